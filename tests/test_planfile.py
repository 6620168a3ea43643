"""The PLAN.toml parser, called as a library function (no command line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from queuetool.changes.kinds import Purge, Repair, Reprioritise, Reschedule
from queuetool.changes.planfile import load_plan
from queuetool.errors import UsageError
from queuetool.priority import Priority
from queuetool.table.filters import JobFilter


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(text)
    return path


def test_a_plan_is_its_edits_in_order(tmp_path):
    path = write(
        tmp_path,
        """
[[edit]]
action = "reprioritize"
function = ["copy*", "mail"]
priority = "low"
to = "high"
[[edit]]
action = "reschedule"
function = "nightly"
at = "@4102444800"
spread = "2h"
[[edit]]
action = "purge"
all = true
export = "gone.jsonl"
[[edit]]
action = "repair"
""",
    )
    assert load_plan(path) == [
        Reprioritise(
            JobFilter(functions=("copy*", "mail"), priorities=(Priority.LOW,)), Priority.HIGH
        ),
        Reschedule(JobFilter(functions=("nightly",)), 4102444800, 7200),
        Purge(JobFilter(), True, Path("gone.jsonl")),
        Repair(JobFilter()),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[edits]]\naction = 'purge'\n", "unknown key edits (a plan holds only [[edit]] tables)"),
        ("", "has no [[edit]] tables"),
        ("[[edit]]\naction = 'purge'\nall = 'false'\n", "edit 1: all must be true or false"),
        (
            "[[edit]]\naction = 'purge'\n",
            "edit 1: purge without a filter would delete every job",
        ),
        (
            "[[edit]]\naction = 'reschedule'\nfunction = 'f'\nat = '@1'\n",
            "edit 1: at @1 has passed",
        ),
        (
            "[[edit]]\naction = 'reschedule'\nfunction = 'f'\nin = '1h'\nnow = true\n",
            "edit 1: reschedule needs exactly one of at, in, now",
        ),
        ("[[edit]]\naction = 'repair'\ndry_run = true\n", "edit 1: unknown key(s) dry_run"),
        # An empty value (an unset variable in a template) is refused, never dropped:
        # dropped, run_before = '' made the purge take every job of the function.
        (
            "[[edit]]\naction = 'purge'\nfunction = 'f'\nrun_before = ''\n",
            "edit 1: run_before: not a time: ''",
        ),
        (
            "[[edit]]\naction = 'purge'\nfunction = 'f'\nrun_after = ''\n",
            "edit 1: run_after: not a time: ''",
        ),
        (
            "[[edit]]\naction = 'reschedule'\nfunction = 'f'\nnow = true\nspread = ''\n",
            "edit 1: spread: not a duration: ''",
        ),
        ("[[edit]]\naction = 'reschedule'\nfunction = 'f'\nat = ''\n", "not a time: ''"),
        ("[[edit]]\naction = 'reschedule'\nfunction = 'f'\nin = ''\n", "not a duration: ''"),
        ("[[edit]\n", "is not valid TOML"),
    ],
)
def test_a_careless_plan_is_refused_with_where_it_went_wrong(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as refused:
        load_plan(path)
    assert str(refused.value).startswith(f"plan {path}")
    assert message in str(refused.value)
