"""hvconf type-checks clean under mypy, with the [tool.mypy] settings in pyproject.toml.

mypy runs in a subprocess from the repo root so it reads that config and
writes its cache to the git-ignored .mypy_cache/ (about 3 s cold, 1 s warm).
Skipped, with the reason, where mypy is not installed (`pip install .[test]`).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 300  # a cold run takes well under a minute here; this only bounds a hang


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                    reason="mypy is not installed (it is in the `test` extra: pip install .[test])")
def test_mypy_reports_no_errors() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy", "hvconf"], cwd=REPO, capture_output=True,
                          text=True, timeout=TIMEOUT_S)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mypy hvconf exited {proc.returncode}:\n{output}"
    # Guard against a config that checks nothing: mypy names how many files it read.
    checked = re.search(r"no issues found in (\d+) source files", output)
    assert checked and int(checked.group(1)) > 0, f"unexpected mypy output:\n{output}"
