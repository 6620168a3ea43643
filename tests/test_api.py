"""The public API: `from queuetool import ...` names every operation, lazily."""

from __future__ import annotations

import subprocess
import sys

import queuetool


def test_import_queuetool_does_not_import_sqlalchemy_or_click():
    code = (
        "import sys, queuetool; "
        "print(sorted(m for m in ('sqlalchemy', 'click', 'pymysql') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n"


def test_every_public_name_resolves():
    for name in queuetool.__all__:
        assert getattr(queuetool, name) is not None, name
    assert set(queuetool.__all__) <= set(dir(queuetool))
    assert set(queuetool.__all__) == {"__version__", *queuetool._EXPORTS}


def test_an_unknown_name_is_an_attribute_error():
    try:
        queuetool.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("no AttributeError")


def test_no_public_name_is_shadowed_by_a_subpackage():
    """`queuetool.migrate` is a package: a function of that name would be replaced by it
    as soon as any of its modules is imported."""
    import queuetool.changes.window
    import queuetool.daemon.status
    import queuetool.migrate.window
    import queuetool.table.report

    for name in queuetool.__all__:
        assert not hasattr(getattr(queuetool, name), "__path__"), name
