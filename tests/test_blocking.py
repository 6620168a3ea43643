"""No edit blocks a queue by surprise (issue 12): an edit or plan that would leave due jobs
behind scheduled ones on gearmand 1.1.20 says so in its dry run and confirmation, and
--unblock keeps the schedule without the block (a real worker gets the due jobs)."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import priority_status
from test_scheduling_live import Collector

from queuetool.changes.apply import apply_edits
from queuetool.changes.blocking import new_blocks, predicted, unblock_edits
from queuetool.changes.kinds import Purge, Reprioritise, Reschedule
from queuetool.priority import Priority
from queuetool.table.blocked import blocked_lists, by_function
from queuetool.table.filters import JobFilter
from queuetool.table.store import QueueStore

BLOCK_ROWS = [(f"n{i}", "f", 1, b"n", 0) for i in range(2)] + [
    (f"l{i}", "f", 2, b"l", 0) for i in range(3)
]
RESCHEDULE_NORMAL = ["reschedule", "-f", "f", "--priority", "normal", "--in", "1h"]


@pytest.mark.gearmand
def test_an_edit_that_would_block_names_it_and_unblock_keeps_the_due_jobs_flowing(
    sqlite_queue, cli
):
    sqlite_queue.insert(BLOCK_ROWS)
    daemon = sqlite_queue.gearmand()
    args = [*sqlite_queue.cli_args(), "--gearmand", daemon.address]

    dry = cli(*RESCHEDULE_NORMAL, *args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run: would reschedule (function f, priority normal) to " in dry.stdout
    assert "dry run: would block f: 3 due jobs blocked until " in dry.stdout
    assert "by 2 scheduled normal jobs\n" in dry.stdout
    assert "--unblock also moves those scheduled jobs down" in dry.stdout

    # The confirmation (no terminal: refused) names the block too; nothing changed.
    asked = cli(*RESCHEDULE_NORMAL, *args)
    assert asked.exit_code == 3, asked.output
    assert "Warning: this edit would block f: 3 due jobs blocked until " in asked.stderr
    assert ": 2 jobs (it would block 3 due jobs of f until " in asked.stderr
    assert sorted(sqlite_queue.rows()) == sorted(BLOCK_ROWS)

    dry = cli(*RESCHEDULE_NORMAL, *args, "--dry-run", "--unblock")
    assert "dry run: would unblock f: its scheduled high or normal jobs to low" in dry.stdout
    assert ": 2 jobs\n" in dry.stdout.split("would unblock", 1)[1]
    assert "dry run: without --unblock it would block f: 3 due jobs" in dry.stdout

    before = time.time()
    done = cli(*RESCHEDULE_NORMAL, *args, "--unblock", "--yes")
    after = time.time()
    assert done.exit_code == 0, done.output
    assert "2 jobs changed: unblock f: its scheduled high or normal jobs to low" in done.stdout
    assert "Warning" not in done.stderr
    # The rescheduled jobs wait in LOW with their time; the due ones go to a worker at once.
    rows = {u: (p, w) for u, _f, p, _d, w in sqlite_queue.rows()}
    assert {u: p for u, (p, _w) in rows.items()} == {u: 2 for u in rows}
    # "--in 1h" from a moment within the call (±1 s of rounding).
    assert all(before + 3599 <= rows[f"n{i}"][1] <= after + 3601 for i in range(2))
    worker = Collector(daemon.port, "f")
    try:
        assert worker.wait_for(3, 60.0)
        assert sorted(u for u, _ in worker.got) == ["l0", "l1", "l2"]
    finally:
        worker.stop()
    assert priority_status(daemon.port)["f"] == (0, 0, 2)
    report = cli("report", *args, "--format", "json")
    assert all(c["blocked"] == 0 for c in json.loads(report.stdout))


def test_yes_warns_and_accept_block_goes_ahead_without_a_word(sqlite_queue, cli):
    sqlite_queue.insert(BLOCK_ROWS)
    args = sqlite_queue.cli_args()
    done = cli(*RESCHEDULE_NORMAL, *args, "--yes", "--quiet")
    assert done.exit_code == 0, done.output
    assert done.stderr.startswith("Warning: this edit would block f: 3 due jobs blocked until ")
    report = cli("report", *args, "--format", "json")
    assert {c["priority"]: c["blocked"] for c in json.loads(report.stdout)}["low"] == 3

    sqlite_queue.sql(f"DELETE FROM {sqlite_queue.table}")
    sqlite_queue.insert(BLOCK_ROWS)
    done = cli(*RESCHEDULE_NORMAL, *args, "--yes", "--accept-block")
    assert done.exit_code == 0, done.output
    assert "would block" not in done.output and "Warning" not in done.output
    both = cli(*RESCHEDULE_NORMAL, *args, "--yes", "--accept-block", "--unblock")
    assert both.exit_code == 2
    assert both.stderr == "Error: --unblock and --accept-block exclude each other: choose one\n"


def test_an_edit_that_blocks_nothing_prints_nothing_more(sqlite_queue, cli):
    # HIGH keeps a due job, and a LOW job rescheduled blocks nothing below it.
    sqlite_queue.insert([("h0", "f", 0, b"h", 0), ("h1", "f", 0, b"h", 0), ("l0", "f", 2, b"l", 0)])
    args = sqlite_queue.cli_args()
    for filters in (["--unique", "h0"], ["--priority", "low"]):
        dry = cli("reschedule", *args, "-f", "f", *filters, "--in", "1h", "--dry-run")
        assert dry.exit_code == 0, dry.output
        assert "block" not in dry.output
        assert dry.stdout.count("\n") == 6  # the edit, its one-job table, "nothing changed"
        done = cli("reschedule", *args, "-f", "f", *filters, "--in", "1h", "--yes", "--unblock")
        assert done.exit_code == 0, done.output
        assert "unblock" not in done.stdout and "Warning" not in done.stderr
    assert sorted((u, p) for u, _f, p, _d, _w in sqlite_queue.rows()) == [
        ("h0", 0),
        ("h1", 0),
        ("l0", 2),
    ]


def test_a_plan_whose_second_edit_blocks_is_named_and_unblocked(sqlite_queue, cli, tmp_path):
    # Only the chain blocks: the first edit schedules s (in LOW: harmless), the second
    # moves the scheduled jobs of f up to HIGH, above the due LOW jobs.
    sqlite_queue.insert([("s", "f", 2, b"s", 0), ("l0", "f", 2, b"l", 0), ("l1", "f", 2, b"l", 0)])
    plan = tmp_path / "tonight.toml"
    plan.write_text(
        '[[edit]]\naction = "reschedule"\nfunction = "f"\nunique = "s"\nin = "1h"\n\n'
        '[[edit]]\naction = "reprioritise"\nfunction = "f"\nscheduled = true\nto = "high"\n'
    )
    args = sqlite_queue.cli_args()
    dry = cli("window", str(plan), *args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run: would block f: 2 due jobs blocked until " in dry.stdout
    assert "by 1 scheduled high jobs\n" in dry.stdout
    before = time.time()
    done = cli("window", str(plan), *args, "--yes", "--unblock")
    after = time.time()
    assert done.exit_code == 0, done.output
    assert "1 jobs changed: unblock f: its scheduled high or normal jobs to low" in done.stdout
    rows = {u: (p, w) for u, _f, p, _d, w in sqlite_queue.rows()}
    assert rows["l0"] == rows["l1"] == (2, 0)
    assert rows["s"][0] == 2 and before + 3599 <= rows["s"][1] <= after + 3601


def test_gearmand_2_is_told_nothing_and_unblock_adds_nothing(sqlite_queue, cli, monkeypatch):
    from queuetool.daemon import version

    monkeypatch.setattr(version, "binary_version", lambda binary=None: "2.0.0")
    sqlite_queue.insert(BLOCK_ROWS)
    args = sqlite_queue.cli_args()
    dry = cli(*RESCHEDULE_NORMAL, *args, "--dry-run", "--unblock")
    assert dry.exit_code == 0 and "block" not in dry.stdout
    done = cli(*RESCHEDULE_NORMAL, *args, "--yes", "--unblock")
    assert done.exit_code == 0, done.output
    assert "unblock" not in done.stdout and "would block" not in done.output
    assert sorted((u, p) for u, _f, p, _d, _w in sqlite_queue.rows()) == sorted(
        (u, p) for u, _f, p, _d, _w in BLOCK_ROWS
    )


# -- the prediction equals what applying the edits leaves -----------------------------

# NOW is taken at import, apply_edits reads the real clock later (a long run may be minutes
# on): future times lie a day ahead, so both clocks agree on what is due.
NOW = int(time.time())
DAY = 86400
WHENS = [0, 1000, NOW - 500, NOW + DAY + 400, NOW + DAY + 9000]
FILTERS = st.builds(
    JobFilter,
    functions=st.sampled_from([(), ("fa",), ("fb",), ("f*",)]),
    priorities=st.sampled_from(
        [
            (),
            (Priority.HIGH,),
            (Priority.NORMAL,),
            (Priority.HIGH, Priority.NORMAL),
            (Priority.LOW,),
        ]
    ),
    scheduled=st.sampled_from([None, None, True, False]),
)
EDITS = st.one_of(
    st.builds(
        lambda f, to: Reprioritise(f, to, all=f.is_empty), FILTERS, st.sampled_from(Priority)
    ),
    st.builds(
        lambda f, at, spread: Reschedule(f, at, spread, all=f.is_empty),
        FILTERS,
        st.sampled_from([NOW + DAY + 300, NOW + DAY + 7000, 0]),
        st.sampled_from([0, 900]),
    ).filter(lambda e: e.at or not e.spread),  # a spread from "now" moves with the clock
    st.builds(lambda f: Purge(f, all=f.is_empty), FILTERS),
)
JOBS = st.lists(
    st.tuples(
        st.sampled_from([f"k{i}" for i in range(10)]),
        st.sampled_from(["fa", "fb"]),
        st.integers(0, 2),
        st.sampled_from(WHENS),
    ),
    min_size=3,
    max_size=25,
    unique_by=lambda j: (j[0], j[1]),
)


# Due LOW jobs in every function: what a block holds back.
BASE = [("base", "fa", 2, 0), ("base", "fb", 2, 0)]


@pytest.fixture(params=["sqlite", "mysql"])
def edited_queue(request):
    return request.getfixturevalue(f"{request.param}_queue")


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(jobs=JOBS, edits=st.lists(EDITS, min_size=1, max_size=3))
def test_predicted_blocks_equal_the_blocks_after_applying(edited_queue, jobs, edits):
    queue = edited_queue
    queue.sql(f"DELETE FROM {queue.table}")
    queue.insert([(u, f, p, b"x", w) for u, f, p, w in [*BASE, *jobs]])
    store = QueueStore(queue.url, queue.table)
    try:
        frozen = [e.frozen(NOW) for e in edits]
        with store.connect() as conn:
            expected = blocked_lists(conn, predicted(store, frozen, NOW), NOW)
            before = by_function(blocked_lists(conn, store.table, NOW))
            blocks = new_blocks(conn, store, frozen, NOW)
            extra = unblock_edits(conn, store, frozen, blocks, NOW)
        apply_edits(store, edits, snapshot=False, guard=False)
        with store.connect() as conn:
            got = blocked_lists(conn, store.table, NOW)
        assert got == expected
        after = by_function(got)
        assert {b.after.function for b in blocks} == {
            f for f, figures in after.items() if figures[0] > before.get(f, (0, 0))[0]
        } | {f for f, figures in after.items() if figures[1] > before.get(f, (0, 0))[1]}
        # --unblock's edits, applied after them, leave none of those functions blocked.
        if extra:
            apply_edits(store, [e for e, _ in extra], snapshot=False, guard=False)
            with store.connect() as conn:
                left = by_function(blocked_lists(conn, store.table, NOW))
            assert not {b.after.function for b in blocks} & set(left)
    finally:
        store.close()
