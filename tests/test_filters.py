"""The job filter: globs compiled to SQL select exactly what fnmatch selects; the
priority and time options select exactly the rows they say."""

from __future__ import annotations

import fnmatch
import itertools
import json
import os
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from queuetool.errors import UsageError
from queuetool.priority import Priority
from queuetool.table.dialects import mysql as mysql_dialect
from queuetool.table.dialects import sqlite as sqlite_dialect
from queuetool.table.filters import JobFilter
from queuetool.table.jobs import list_jobs
from queuetool.table.store import QueueStore, queue_table

# Characters that mean something to fnmatch, SQLite's GLOB, LIKE or a regex, letters
# in both cases, and non-ASCII ones (all in latin1, so a latin1 MySQL table holds them).
ALPHABET = "aAbé É%_*?[]!^-\\. $"
NAME_ALPHABET = ALPHABET.replace("*", "").replace("?", "")
EXTRA_NAMES = [
    "abc",
    "ABC",
    "aBc",
    "a%b_c",
    "a%%",
    "a__",
    "x[y]z",
    "[a]",
    "a\\b",
    "a\\\\b",
    "^a",
    "!a",
    "a-b",
    "a ",
    " a",
    "a  ",
    "résumé",
    "RÉSUMÉ",
    "a.b",
    "a$",
    "a\nb",
    "a\n",
    "(a)",
    "a{2}",
    "a|b",
]
# Every name of up to two characters, plus longer ones with the tricky parts.
CORPUS = sorted(
    {"".join(p) for n in range(3) for p in itertools.product(NAME_ALPHABET, repeat=n)}
    | set(EXTRA_NAMES)
)
# Names a latin1 table cannot hold; "e\u0301" is two characters, unlike "é".
UNICODE_NAMES = ["中", "中文", "日本", "😀", "a😀", "ǅ", "e\u0301", "\u0301"]

patterns = st.text(alphabet=ALPHABET, min_size=0, max_size=6)
# Patterns built from a corpus name so that many of them match something.
name_patterns = st.builds(
    lambda name, cut, wild: name[:cut] + wild + name[cut:],
    st.sampled_from(EXTRA_NAMES),
    st.integers(0, 4),
    st.sampled_from(["*", "?", "[!a]", "[a-c]", "[%_]", ""]),
)
any_pattern = st.one_of(patterns, name_patterns)

FIXED_PATTERNS = [
    "a*",
    "A*",
    "*a",
    "a?",
    "a??",
    "?",
    "*",
    "",
    "[ab]*",
    "[!ab]",
    "[!ab]*",
    "[^a]",
    "[^]",
    "[!]",
    "[]]",
    "[!]]",
    "[]a]",
    "[a-]",
    "[-a]",
    "[!-a]",
    "[a-c]",
    "[c-a]",
    "[c-ab]",
    "[A-Z]*",
    "[%]",
    "[_]",
    "%",
    "_",
    "a%",
    "a_",
    "a%b_c",
    "a__",
    "[",
    "[a",
    "a[",
    "]",
    "a]",
    "\\",
    "a\\b",
    "a\\*",
    "*\\",
    "[\\]",
    "é",
    "É",
    "?é",
    "r?sum?",
    "*É*",
    "[é]",
    "[!é]",
    "e?",
    "a ",
    "a *",
    " *",
    "a.b",
    "a$",
    "^a",
    "!a",
    "(a)",
    "a{2}",
    "a|b",
    "a*b",
    "*a*b*",
    "a\nb",
    "a?b",
    "a*\n",
]

FIXED_PATTERNS_UNICODE = [*FIXED_PATTERNS, "中*", "?文", "[!中]", "😀", "?😀", "?\u0301"]


def expected(names: list[str], pats: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(fnmatch.fnmatchcase(n, p) for p in pats))


# -- SQLite: GLOB, through the real filter -------------------------------------------


@pytest.fixture(scope="module")
def sqlite_corpus() -> Iterator[tuple[sa.Engine, sa.Table]]:
    engine = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool)
    table = queue_table()
    table.metadata.create_all(engine)
    rows = [
        {"unique_key": f"u{i}", "function_name": name, "priority": 1, "data": b"", "when_to_run": 0}
        for i, name in enumerate([*CORPUS, *UNICODE_NAMES])
    ]
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    yield engine, table
    engine.dispose()


def sqlite_select(engine: sa.Engine, table: sa.Table, pats: tuple[str, ...]) -> list[str]:
    where = JobFilter(functions=pats).where(table, sqlite_dialect)
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(table.c.function_name).where(where)).scalars())


@settings(max_examples=400)
@given(pats=st.lists(any_pattern, min_size=1, max_size=3).map(tuple))
@example(pats=("[^a]",))
@example(pats=("[!]a]",))
@example(pats=("*", "abc"))
def test_sqlite_glob_selects_what_fnmatch_selects(sqlite_corpus, pats):
    engine, table = sqlite_corpus
    assert sqlite_select(engine, table, pats) == expected([*CORPUS, *UNICODE_NAMES], pats)


@pytest.mark.parametrize("pattern", FIXED_PATTERNS_UNICODE)
def test_sqlite_glob_fixed_patterns(sqlite_corpus, pattern):
    engine, table = sqlite_corpus
    assert sqlite_select(engine, table, (pattern,)) == expected(
        [*CORPUS, *UNICODE_NAMES], (pattern,)
    )


# -- MySQL: REGEXP against the real server, on latin1 and utf8mb4 tables ---------------


@pytest.fixture(scope="module", params=["latin1", "utf8mb4"])
def mysql_corpus(request, mysql_server) -> Iterator[tuple[sa.Engine, sa.Table, list[str]]]:
    """gearmand's MySQL table in the given charset (the plugin uses the server default)."""
    charset = request.param
    database = f"qt_filters_{os.getpid()}_{charset}"
    mysql_server.create_database(database)
    names = CORPUS + (UNICODE_NAMES if charset == "utf8mb4" else [])
    try:
        mysql_server.query(
            database,
            "CREATE TABLE gearman_queue (unique_key VARCHAR(64), function_name VARCHAR(255), "
            "priority INT, data LONGBLOB, when_to_run INT, unique key (unique_key, function_name))"
            f" DEFAULT CHARSET={charset}",
        )
        with mysql_server.connect(database) as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO gearman_queue VALUES (%s, %s, 1, '', 0)",
                [(f"u{i}", name) for i, name in enumerate(names)],
            )
        store = QueueStore(mysql_server.url(database))
        yield store.engine, store.table, names
        store.close()
    finally:
        mysql_server.drop_database(database)


def mysql_select(engine: sa.Engine, table: sa.Table, pats: tuple[str, ...]) -> list[str]:
    where = JobFilter(functions=pats).where(table, mysql_dialect)
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(table.c.function_name).where(where)).scalars())


def test_mysql_corpus_is_stored_exactly(mysql_corpus):
    """The comparison below means something only if every name arrived intact."""
    engine, table, names = mysql_corpus
    with engine.connect() as conn:
        stored = conn.execute(sa.select(table.c.function_name)).scalars().all()
    assert sorted(stored) == sorted(names)


@settings(max_examples=30, deadline=None)
@given(pats=st.lists(any_pattern, min_size=1, max_size=3).map(tuple))
def test_mysql_glob_selects_what_fnmatch_selects(mysql_corpus, pats):
    engine, table, names = mysql_corpus
    assert mysql_select(engine, table, pats) == expected(names, pats)


@pytest.mark.parametrize("pattern", FIXED_PATTERNS_UNICODE)
def test_mysql_glob_fixed_patterns(mysql_corpus, pattern):
    engine, table, names = mysql_corpus
    assert mysql_select(engine, table, (pattern,)) == expected(names, (pattern,))


# -- exact names, --unique, and the other options, through `jobs` ----------------------

NOW = 1_800_000_000
PAST = 1_000_000_000
FUTURE = 2_000_000_000
# (unique_key, function_name, priority, when_to_run)
JOBS = [
    ("h-now", "resize", 0, 0),
    ("n-now", "resize", 1, 0),
    ("l-now", "resize", 2, 0),
    ("h-past", "Resize", 0, PAST),
    ("n-past", "resize_v2", 1, PAST),
    ("l-future", "resize", 2, FUTURE),
    ("h-future", "mail", 0, FUTURE),
    ("n-edge", "mail", 1, NOW),
    ("l-edge+1", "mail", 2, NOW + 1),
    ("pct%", "mail%", 1, 0),
    ("under_", "mail_", 1, 0),
    ("space ", "mail ", 1, 0),
]


@pytest.fixture
def jobs_queue(queue):
    queue.insert([(u, f, p, b"x", w) for u, f, p, w in JOBS])
    return queue


def model(
    functions=(),
    uniques=(),
    priorities=(),
    scheduled=None,
    run_after=None,
    run_before=None,
    now=NOW,
) -> list[str]:
    """The filter's meaning, in Python, over JOBS."""
    keys = []
    for u, f, p, w in JOBS:
        if functions and not any(fnmatch.fnmatchcase(f, g) for g in functions):
            continue
        if uniques and not any(fnmatch.fnmatchcase(u, g) for g in uniques):
            continue
        if priorities and p not in priorities:
            continue
        if scheduled is True and not w > now:
            continue
        if scheduled is False and not w <= now:
            continue
        if run_after is not None and not w >= run_after:
            continue
        if run_before is not None and not w < run_before:
            continue
        keys.append(u)
    return sorted(keys)


def listed(store: QueueStore, job_filter: JobFilter) -> list[str]:
    return sorted(j.unique_key for j in list_jobs(store, job_filter, limit=None))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    functions=st.lists(
        st.sampled_from(["resize", "Resize", "mail", "mail%", "mail_", "mail ", "resize*", "m*"]),
        max_size=2,
    ),
    uniques=st.lists(st.sampled_from(["h-*", "*-now", "pct%", "under_", "*edge*"]), max_size=2),
    priorities=st.lists(st.sampled_from(list(Priority)), max_size=2),
    scheduled=st.sampled_from([None, True, False]),
    run_after=st.sampled_from([None, 0, PAST, NOW, NOW + 1]),
    run_before=st.sampled_from([None, 1, PAST + 1, NOW, NOW + 1, FUTURE + 1]),
)
def test_filter_combinations_select_the_model(
    jobs_queue, functions, uniques, priorities, scheduled, run_after, run_before
):
    if run_after is not None and run_before is not None and run_after >= run_before:
        with pytest.raises(UsageError, match="--run-after must be earlier than --run-before"):
            JobFilter(run_after=run_after, run_before=run_before)
        return
    job_filter = JobFilter(
        functions=tuple(functions),
        uniques=tuple(uniques),
        priorities=tuple(priorities),
        scheduled=scheduled,
        run_after=run_after,
        run_before=run_before,
        now=NOW,
    )
    store = QueueStore(jobs_queue.url, jobs_queue.table)
    try:
        assert listed(store, job_filter) == model(
            functions, uniques, {int(p) for p in priorities}, scheduled, run_after, run_before
        )
    finally:
        store.close()


def keys_from_cli(cli, queue, *options: str) -> list[str]:
    result = cli("jobs", *queue.cli_args(), "--format", "json", "--limit", "0", *options)
    assert result.exit_code == 0, result.output
    return sorted(j["unique_key"] for j in json.loads(result.stdout))


@pytest.mark.parametrize(
    ("options", "keys"),
    [
        ((), sorted(u for u, *_ in JOBS)),
        (("--function", "resize"), ["h-now", "l-future", "l-now", "n-now"]),
        (("--function", "Resize"), ["h-past"]),
        (("--function", "RESIZE"), []),
        (("--function", "resize*"), ["h-now", "l-future", "l-now", "n-now", "n-past"]),
        (("--function", "mail"), ["h-future", "l-edge+1", "n-edge"]),
        (("--function", "mail%"), ["pct%"]),
        (("--function", "mail_"), ["under_"]),
        (("--function", "mail "), ["space "]),
        (("--function", "mail?"), ["pct%", "space ", "under_"]),
        (("-f", "mail", "-f", "Resize"), ["h-future", "h-past", "l-edge+1", "n-edge"]),
        (("--unique", "h-*"), ["h-future", "h-now", "h-past"]),
        (("--unique", "space"), []),
        (("--unique", "space "), ["space "]),
        (("--priority", "high"), ["h-future", "h-now", "h-past"]),
        (("-p", "LOW", "-p", "high", "-f", "mail"), ["h-future", "l-edge+1"]),
        (("--run-after", f"@{NOW}"), ["h-future", "l-edge+1", "l-future", "n-edge"]),
        (
            ("--run-before", f"@{NOW}"),
            ["h-now", "h-past", "l-now", "n-now", "n-past", "pct%", "space ", "under_"],
        ),
        (("--run-after", "@1", "--run-before", "2001-09-09T01:46:41Z"), ["h-past", "n-past"]),
        (("--run-after", "2033-05-18T03:33:20+00:00", "--priority", "low"), ["l-future"]),
    ],
)
def test_jobs_command_filters(jobs_queue, cli, options, keys):
    assert keys_from_cli(cli, jobs_queue, *options) == keys


def test_due_and_scheduled_follow_the_real_clock(jobs_queue, cli):
    now = int(time.time())
    assert model(scheduled=True, now=now) != model(scheduled=False, now=now)  # both non-trivial
    assert keys_from_cli(cli, jobs_queue, "--scheduled") == model(scheduled=True, now=now)
    assert keys_from_cli(cli, jobs_queue, "--due") == model(scheduled=False, now=now)
    assert keys_from_cli(cli, jobs_queue, "--due", "-f", "resize") == model(
        functions=("resize",), scheduled=False, now=now
    )


def test_run_after_not_before_run_before_is_an_error(jobs_queue, cli):
    result = cli("jobs", *jobs_queue.cli_args(), "--run-after", "@5", "--run-before", "@5")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == "Error: --run-after must be earlier than --run-before\n"


def test_describe():
    assert JobFilter().describe() == "all jobs"
    assert JobFilter().is_empty
    f = JobFilter(
        functions=("a*", "b"),
        uniques=("u?",),
        priorities=(Priority.HIGH, Priority.LOW),
        scheduled=False,
        run_after=5,
        run_before=9,
    )
    assert not f.is_empty
    assert f.describe() == (
        "function a* or b, unique u?, priority high or low, due, run after @5, run before @9"
    )
