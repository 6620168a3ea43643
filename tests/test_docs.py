"""The documentation keeps up with the code: the README's code map names every module,
every command has a README example, and every public function and class has a docstring.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from queuetool.cli import main

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "queuetool"
README = (ROOT / "README.md").read_text()
MODULES = sorted(p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py"))


def code_map() -> dict[str, str]:
    """module path -> its line in the README's code map (`**`queuetool/x/`**` then
    `- `name.py`: ...` items)."""
    section = README.split("\n### Code map\n", 1)[1]
    section = re.split(r"\n#{2,3} ", section, maxsplit=1)[0]
    entries: dict[str, str] = {}
    package = None
    for line in section.splitlines():
        heading = re.match(r"\*\*`(queuetool/(?:[a-z_]+/)*)`\*\*", line)
        item = re.match(r"- `([a-z0-9_]+\.py)`: \S", line)
        if heading:
            package = heading.group(1)
        elif item:
            assert package, f"code map item before any package: {line!r}"
            entries[package + item.group(1)] = line
    return entries


def test_the_code_map_names_every_module_and_no_other():
    named = code_map()
    assert sorted(named) == MODULES


def test_there_are_modules_in_every_part():
    parts = {m.split("/")[1] for m in MODULES if m.count("/") > 1}
    assert {"table", "daemon", "changes", "migrate", "cli", "exporter"} <= parts


def listed_commands() -> list[str]:
    """The commands `queuetool --help` lists."""
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    listing = result.output.split("\nCommands:\n", 1)[1]
    return [line.split()[0] for line in listing.splitlines() if line.startswith("  ")]


def alias_of(name: str) -> str:
    """An alias's help says ``Same as `NAME`.``: its example is NAME's."""
    result = CliRunner().invoke(main, [name, "--help"])
    same = re.search(r"^\s+Same as `([a-z-]+)`\.", result.output, re.MULTILINE)
    return same.group(1) if same else name


def test_there_are_commands():
    assert {"report", "jobs", "check", "migrate", "make-replay-safe"} <= set(listed_commands())


@pytest.mark.parametrize("name", listed_commands())
def test_every_command_has_a_readme_example(name):
    command = alias_of(name)
    # An example is a line of an indented code block that runs the command.
    example = re.compile(rf"^    (?:.*\s)?queuetool {re.escape(command)}(?:\s|$)", re.MULTILINE)
    assert example.search(README), f"no README example runs `queuetool {command}`"


# -- docstrings ----------------------------------------------------------------------


def public_definitions() -> list[tuple[str, ast.AST, str | None]]:
    """(module path, node, class name) of every public module-level function and class,
    and every public method of a public class (dunders and `_private` names skipped)."""
    found = []
    for module in MODULES:
        tree = ast.parse((ROOT / module).read_text())
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            if node.name.startswith("_"):
                continue
            found.append((module, node, None))
            if isinstance(node, ast.ClassDef):
                for member in node.body:
                    if isinstance(
                        member, ast.FunctionDef | ast.AsyncFunctionDef
                    ) and not member.name.startswith("_"):
                        found.append((module, member, node.name))
    return found


def implements_documented_dialect_member(module: str, name: str) -> bool:
    """A dialect module's function that implements a documented `Dialect` member shares
    its docstring (the interface says what; the module's comments say how)."""
    from queuetool.table.dialects import Dialect

    backends = {"sqlite.py", "mysql.py", "postgresql.py"}
    in_dialect = (
        module.startswith("queuetool/table/dialects/") and module.split("/")[-1] in backends
    )
    member = getattr(Dialect, name, None)
    return in_dialect and member is not None and bool(inspect.getdoc(member))


def test_every_public_function_and_class_has_a_docstring():
    missing = [
        f"{module}:{node.lineno} {node.name}"
        for module, node, owner in public_definitions()
        if owner is None
        and not ast.get_docstring(node)
        and not implements_documented_dialect_member(module, node.name)
    ]
    assert missing == []


# Methods (mostly one-line properties and result accessors) still without a docstring when
# this test was written. The list only shrinks: a new method needs a docstring, and one
# documented since must leave the list.
UNDOCUMENTED_METHODS = {
    "queuetool/changes/apply.py EditResult.changed",
    "queuetool/changes/apply.py EditResult.matched",
    "queuetool/changes/importing.py ExportResult.rows",
    "queuetool/changes/importing.py ImportResult.written",
    "queuetool/changes/kinds.py Reschedule.start",
    "queuetool/changes/restore.py Restoring.staging",
    "queuetool/changes/restore.py Restoring.old",
    "queuetool/changes/restore.py Restoring.check",
    "queuetool/changes/restore.py Restoring.check_rows",
    "queuetool/changes/snapshot.py SnapshotInfo.describe",
    "queuetool/changes/snapshot.py SnapshotInfo.created_iso",
    "queuetool/changes/snapshot.py SnapshotVerification.ok",
    "queuetool/changes/snapshot.py SnapshotVerification.summary",
    "queuetool/changes/window.py WindowResult.downtime",
    "queuetool/changes/window.py EditWindowResult.repaired",
    "queuetool/cli/migrate.py ProgressLine.end",
    "queuetool/cli/options.py AppContext.config",
    "queuetool/cli/options.py AppContext.queue_setting",
    "queuetool/cli/options.py AppContext.table_setting",
    "queuetool/cli/options.py AppContext.store",
    "queuetool/cli/options.py AppContext.close",
    "queuetool/config.py Config.get",
    "queuetool/config.py Config.source",
    "queuetool/config.py Config.queues",
    "queuetool/daemon/admin.py PriorityStatus.counts",
    "queuetool/daemon/admin.py AdminClient.close",
    "queuetool/daemon/admin.py AdminClient.status",
    "queuetool/daemon/admin.py AdminClient.priority_status",
    "queuetool/daemon/admin.py AdminClient.workers",
    "queuetool/daemon/admin.py AdminClient.show_jobs",
    "queuetool/daemon/admin.py AdminClient.show_unique_jobs",
    "queuetool/daemon/admin.py AdminClient.getpid",
    "queuetool/daemon/admin.py AdminClient.version",
    "queuetool/daemon/discover.py GearmandOptions.get",
    "queuetool/daemon/discover.py GearmandOptions.flag",
    "queuetool/daemon/discover.py GearmandOptions.queue_type",
    "queuetool/daemon/discover.py GearmandOptions.port",
    "queuetool/daemon/discover.py GearmandOptions.listen",
    "queuetool/daemon/discover.py GearmandOptions.pid_file",
    "queuetool/daemon/discover.py GearmandOptions.config_file",
    "queuetool/daemon/discover.py GearmandOptions.store_queue_on_shutdown",
    "queuetool/daemon/discover.py GearmandOptions.hashtable_buckets",
    "queuetool/daemon/discover.py GearmandOptions.table",
    "queuetool/daemon/discover.py DaemonInfo.argv",
    "queuetool/daemon/guard.py Measured.up",
    "queuetool/daemon/guard.py Measured.summary",
    "queuetool/daemon/held.py HeldQueue.total",
    "queuetool/daemon/held.py HeldQueue.functions",
    "queuetool/daemon/held.py HeldQueue.count",
    "queuetool/daemon/reload.py ReplayPrediction.summary",
    "queuetool/daemon/reload.py ReloadVerification.ok",
    "queuetool/daemon/reload.py ReloadVerification.total_table",
    "queuetool/daemon/reload.py ReloadVerification.total_daemon",
    "queuetool/daemon/reload.py ReloadVerification.summary",
    "queuetool/daemon/state.py DaemonState.save",
    "queuetool/daemon/state.py DaemonState.load",
    "queuetool/daemon/stop.py StopResult.queued",
    "queuetool/daemon/version.py DaemonVersion.known",
    "queuetool/daemon/version.py DaemonVersion.label",
    "queuetool/exporter/cache.py FiguresCache.name",
    "queuetool/exporter/figures.py Cell.due",
    "queuetool/exporter/figures.py Figures.functions",
    "queuetool/exporter/metrics.py QueueCollector.collect",
    "queuetool/exporter/server.py Exporter.metrics",
    "queuetool/exporter/server.py Exporter.page",
    "queuetool/exporter/server.py Exporter.close",
    "queuetool/exporter/server.py ExporterServer.url",
    "queuetool/migrate/carry.py Refusal.reason",
    "queuetool/migrate/carry.py Refusals.add",
    "queuetool/migrate/carry.py Refusals.total",
    "queuetool/migrate/carry.py Refusals.lines",
    "queuetool/migrate/carry.py Refusals.as_dict",
    "queuetool/migrate/copy.py MigrationResult.rows_per_second",
    "queuetool/migrate/copy.py MigrationResult.as_dict",
    "queuetool/migrate/sourcesum.py SourceChecksum.start",
    "queuetool/migrate/staging.py StagingWriter.dialect_prepare",
    "queuetool/migrate/staging.py StagingWriter.abort",
    "queuetool/migrate/staging.py Writer.write",
    "queuetool/migrate/staging.py Writer.close",
    "queuetool/migrate/staging.py Writer.abort",
    "queuetool/migrate/staging.py ThreadedWriter.close",
    "queuetool/priority.py Priority.label",
    "queuetool/table/blocked.py Blocker.describe",
    "queuetool/table/check.py Problem.description",
    "queuetool/table/check.py CheckResult.ok",
    "queuetool/table/check.py CheckResult.summary",
    "queuetool/table/check.py CheckResult.as_dict",
    "queuetool/table/checksum.py Checksum.add",
    "queuetool/table/checksum.py Checksum.update",
    "queuetool/table/checksum.py Checksum.hex",
    "queuetool/table/dialects/postgresql.py CopyLoad.write",
    "queuetool/table/dialects/postgresql.py CopyLoad.close",
    "queuetool/table/export.py JobWriter.write",
    "queuetool/table/filters.py JobFilter.is_empty",
    "queuetool/table/jobfile.py FileCheck.describe",
    "queuetool/table/jobfile.py JobSource.name",
    "queuetool/table/jobfile.py JobSource.stdin",
    "queuetool/table/report.py Group.due",
    "queuetool/table/report.py Report.total",
    "queuetool/table/report.py Report.functions",
    "queuetool/table/store.py QueueStore.display_url",
    "queuetool/table/store.py QueueStore.engine",
    "queuetool/table/store.py QueueStore.close",
    "queuetool/table/store.py QueueStore.has_unique_key",
    "queuetool/table/store.py QueueStore.ddl",
    "queuetool/table/store.py QueueStore.count",
}


def test_every_public_method_has_a_docstring_of_its_own_or_its_interface():
    """A method that implements a documented interface (a writer's `close`, a collector's
    `collect`) shares its docstring, as `help()` shows it; any other needs its own."""
    missing = set()
    for module, node, owner in public_definitions():
        if owner is None or ast.get_docstring(node):
            continue
        name = module.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        cls = getattr(importlib.import_module(name), owner)
        if not inspect.getdoc(getattr(cls, node.name)):
            missing.add(f"{module} {owner}.{node.name}")
    assert sorted(missing - UNDOCUMENTED_METHODS) == [], "new public methods need a docstring"
    assert sorted(UNDOCUMENTED_METHODS - missing) == [], "documented now: take off the list"
