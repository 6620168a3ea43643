"""A config value of the wrong type, or a config file that is not UTF-8, is one line
naming the file, section.key and the type wanted (exit 2), never a traceback from where
the value is used; nothing is written and a running gearmand is left alone."""

from __future__ import annotations

import pytest

ROWS = [(f"job-{i:02d}", f"fn{i % 3}", 1, f"payload {i}".encode(), 0) for i in range(12)]


def assert_one_line(result, message: str) -> None:
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"Error: {message}\n"
    assert "Traceback" not in result.stderr


WRONG = [
    ("[gearmand]\naddress = 4730\n", "gearmand.address must be a string, not an integer"),
    ("[queue]\ntable = 5\n", "queue.table must be a string, not an integer"),
    ("[snapshots]\ndir = 5\n", "snapshots.dir must be a string, not an integer"),
    ('[snapshots]\nkeep = "20"\n', "snapshots.keep must be an integer, not a string"),
    ("[snapshots]\nkeep = true\n", "snapshots.keep must be an integer, not a boolean"),
    ("[gearmand]\nstop = ['systemctl', 'stop']\n", "gearmand.stop must be a string, not an array"),
    ('[exporter]\nmin_interval = "abc"\n', "exporter.min_interval must be a number, not a string"),
    (
        '[queues.old]\nurl = "sqlite:///x"\nstore_queue_on_shutdown = "yes"\n',
        "queues.old.store_queue_on_shutdown must be true or false, not a string",
    ),
    (
        '[queues.old]\nurl = "sqlite:///x"\ngearmand = 4730\n',
        "queues.old.gearmand must be a string, not an integer",
    ),
]


@pytest.mark.parametrize("command", ["report", "snapshot", "purge"])
@pytest.mark.parametrize(("text", "message"), WRONG)
def test_a_value_of_the_wrong_type_is_one_line(
    sqlite_queue, cli, snapdir, tmp_path, command, text, message
):
    sqlite_queue.insert(ROWS)
    before = sqlite_queue.rows()
    config = tmp_path / "queuetool.toml"
    table = "" if text.startswith("[queue]") else f'table = "{sqlite_queue.table}"\n'
    body = text.replace("[queue]\n", "")
    config.write_text(f'[queue]\nurl = "{sqlite_queue.url}"\n{table}{body}')
    to_snapdir = ["--snapshot-dir", str(snapdir)]
    extra = {"report": [], "snapshot": to_snapdir, "purge": ["--all", "--yes", *to_snapdir]}
    result = cli(command, "--config", str(config), *extra[command])
    assert_one_line(result, f"{config}: {message}")
    assert sqlite_queue.rows() == before
    assert list(snapdir.iterdir()) == []


def test_a_url_of_the_wrong_type_is_one_line(cli, tmp_path):
    config = tmp_path / "queuetool.toml"
    config.write_text("[queue]\nurl = 5\n")
    result = cli("report", "--config", str(config))
    assert_one_line(result, f"{config}: queue.url must be a string, not an integer")


def test_a_config_file_that_is_not_utf8_is_one_line(sqlite_queue, cli, tmp_path):
    config = tmp_path / "queuetool.toml"
    config.write_bytes(b"\xff\xfe[queue]\n")
    result = cli("report", *sqlite_queue.cli_args(), "--config", str(config))
    assert_one_line(
        result,
        f"config file {config} is not UTF-8 text, as TOML must be (byte 0: invalid start byte)",
    )


@pytest.mark.parametrize("value", ['"abc"', "-1", "nan"])
def test_exporter_min_interval_of_the_wrong_kind_is_one_line(sqlite_queue, cli, tmp_path, value):
    config = tmp_path / "exp.toml"
    config.write_text(f'[queue]\nurl = "{sqlite_queue.url}"\n[exporter]\nmin_interval = {value}\n')
    result = cli("exporter", "--config", str(config), "--listen", "127.0.0.1:1")
    wanted = "must be a number, not a string" if value == '"abc"' else "must be at least 0"
    assert_one_line(result, f"{config}: exporter.min_interval {wanted}")


def test_a_wrong_address_type_leaves_the_running_daemon_alone(sqlite_queue, cli, snapdir, tmp_path):
    sqlite_queue.insert(ROWS)
    daemon = sqlite_queue.gearmand()
    before = sqlite_queue.rows()
    config = tmp_path / "queuetool.toml"
    config.write_text(f'[queue]\nurl = "{sqlite_queue.url}"\n[gearmand]\naddress = {daemon.port}\n')
    result = cli(
        "purge", "--config", str(config), "-f", "fn0", "--yes", "--snapshot-dir", str(snapdir)
    )
    assert_one_line(result, f"{config}: gearmand.address must be a string, not an integer")
    assert daemon.running() and int(daemon.pidfile.read_text()) == daemon.pid
    assert sqlite_queue.rows() == before and list(snapdir.iterdir()) == []
