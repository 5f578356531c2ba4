"""What many test modules share: running `python -m hvconf` as a user does.

pytest puts this folder on sys.path (rootdir conftest, default import mode), so a test
module imports it as `helpers`; the fixtures built on it are in tests/conftest.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def hvconf(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None, stdin: str | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m hvconf ARGS` in `cwd` (with `env` instead of this process's environment, `stdin` as
    its input), bounded by `timeout`; no command may print a traceback, on either stream."""
    done = subprocess.run([sys.executable, "-m", "hvconf", *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done
