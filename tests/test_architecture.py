"""The import contract of issue 9, enforced: ``lint-imports`` over ``[tool.importlinter]``.

The contracts (layers, the sans-I/O protocol package, click only in ``cli/``,
front-ends above their core) live in pyproject.toml with the reason for each; this
test runs import-linter's own command on them so the one test command, and with it
``.ci/run``, fails with import-linter's report (the broken chain, file and line).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_import_contract_is_kept() -> None:
    # The console script sits next to the interpreter of the venv that has the
    # [test] extra; run from ROOT, it reads ROOT/pyproject.toml and analyses the
    # wstool/ of this checkout (lint-imports puts the working directory first on
    # sys.path). --no-cache: no .import_linter_cache/ left in the tree.
    lint_imports = Path(sys.executable).with_name("lint-imports")
    if not lint_imports.exists():
        pytest.fail(f"{lint_imports} is missing: pip install -e '.[test]'")
    proc = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    if proc.returncode != 0 or "0 broken" not in proc.stdout:
        pytest.fail(
            f"the import contract in pyproject.toml is broken (lint-imports exit status "
            f"{proc.returncode}):\n{proc.stdout}{proc.stderr}",
            pytrace=False,
        )
