"""Where the test bed's MySQL/PostgreSQL comes from (servers.server_source): pure, no Docker.

Here, with no Docker engine, the local throwaway servers must stay the choice whatever
else is installed; a machine with Docker gets testcontainers only when it opts in.
"""

from __future__ import annotations

import pytest
from servers import choose_source, server_source

URL = "QUEUETOOL_TEST_MYSQL_URL"


def yes() -> bool:
    return True


def no() -> bool:
    return False


def never() -> bool:
    raise AssertionError("probed although the choice was already made")


@pytest.mark.parametrize(
    ("env", "docker", "installed", "source"),
    [
        ({}, yes, yes, "local"),  # not opted in: Docker and the package are not enough
        ({"QUEUETOOL_TESTCONTAINERS": "1"}, yes, yes, "testcontainers"),
        ({"QUEUETOOL_TESTCONTAINERS": "1"}, no, yes, "local"),  # no engine answers
        ({"QUEUETOOL_TESTCONTAINERS": "1"}, yes, no, "local"),  # package not installed
        ({"QUEUETOOL_TESTCONTAINERS": "0"}, yes, yes, "local"),
        ({"QUEUETOOL_TESTCONTAINERS": ""}, yes, yes, "local"),
        ({URL: "mysql://u:p@db:3306"}, yes, yes, "env-url"),
        ({URL: "mysql://u:p@db:3306", "QUEUETOOL_TESTCONTAINERS": "1"}, yes, yes, "env-url"),
        ({URL: ""}, no, no, "local"),  # an empty URL is no URL
    ],
)
def test_the_choice(env, docker, installed, source):
    assert server_source(env, URL, docker, installed) == source


def test_the_url_variable_is_the_callers():
    env = {"QUEUETOOL_TEST_MYSQL_URL": "mysql://u:p@db:3306"}
    assert server_source(env, "QUEUETOOL_TEST_POSTGRES_URL", no, no) == "local"
    pg = {"QUEUETOOL_TEST_POSTGRES_URL": "postgresql://u:p@db:5432"}
    assert server_source(pg, "QUEUETOOL_TEST_POSTGRES_URL", never, never) == "env-url"


@pytest.mark.parametrize(
    "env", [{}, {URL: "mysql://u:p@db:3306"}, {"QUEUETOOL_TESTCONTAINERS": "0"}]
)
def test_docker_is_not_probed_unless_opted_in(env):
    assert server_source(env, URL, never, never) in ("local", "env-url")


@pytest.mark.parametrize(
    ("docker", "installed", "source"),
    [(yes, yes, "testcontainers"), (no, yes, "local"), (yes, no, "local")],
)
def test_the_real_probes_decide_an_opted_in_run(monkeypatch, docker, installed, source):
    """choose_source asks this process's environment and the two probes (replaced here,
    so the expected answer is fixed, not computed by the probes under test)."""
    import servers

    monkeypatch.delenv(URL, raising=False)
    monkeypatch.setenv("QUEUETOOL_TESTCONTAINERS", "1")
    monkeypatch.setattr(servers, "docker_available", docker)
    monkeypatch.setattr(servers, "have_testcontainers", installed)
    assert choose_source(URL) == source
    monkeypatch.setenv("QUEUETOOL_TESTCONTAINERS", "0")
    assert choose_source(URL) == "local"
