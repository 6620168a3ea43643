"""The built wheel carries gearmand's DDL from the top-level sql/ (the one copy) as
queuetool/sql, and building it gives no setuptools warning."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DDL = sorted(p.name for p in (ROOT / "sql").glob("*.sql"))  # one per backend


def test_wheel_ships_the_ddl_without_warnings(tmp_path):
    # Built from a copy: the build leaves its build/ and egg-info there, not in the repo.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__"),
    )
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    log = build.stdout + build.stderr
    assert "is absent from the `packages` configuration" not in log
    assert "_Warning" not in log and "SetuptoolsDeprecationWarning" not in log
    (wheel,) = tmp_path.glob("queuetool-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        for name in DDL:
            assert archive.read(f"queuetool/sql/{name}") == (ROOT / "sql" / name).read_bytes()
        archive.extractall(tmp_path / "installed")
    assert sorted(n for n in names if n.endswith(".sql")) == [f"queuetool/sql/{n}" for n in DDL]
    assert not (ROOT / "queuetool" / "sql").exists()  # no second copy, no link

    # The installed package finds its own copy, wherever it runs from.
    installed = tmp_path / "installed"
    found = subprocess.run(
        [sys.executable, "-c",
         "from queuetool.table.store import SQL_DIR; "
         "print(SQL_DIR); print(*sorted(p.name for p in SQL_DIR.iterdir()))"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(installed)},
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert found.stdout == f"{installed / 'queuetool' / 'sql'}\n{' '.join(DDL)}\n"
