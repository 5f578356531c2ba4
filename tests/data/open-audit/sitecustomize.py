"""Test helper: record every open() of a watched path (default /dev/kvm).

Put this folder on PYTHONPATH and set HVCONF_TEST_OPEN_LOG to a file; each
open of a path in HVCONF_TEST_OPEN_WATCH (colon-separated) appends one line
to that file, in this process and in Python children that inherit the
environment. Without HVCONF_TEST_OPEN_LOG it does nothing. Used by
tests/test_launcher.py and tests/test_cli.py to show a launcher exits before
touching /dev/kvm (os.open raises the `open` audit event).
"""

import os
import sys

_LOG = os.environ.get("HVCONF_TEST_OPEN_LOG")
_WATCH = frozenset(os.environ.get("HVCONF_TEST_OPEN_WATCH", "/dev/kvm").split(":"))


def _hook(event: str, args: tuple) -> None:
    if event != "open" or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    path = os.fsdecode(args[0])
    if path in _WATCH:
        fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()} {path}\n".encode())
        finally:
            os.close(fd)


if _LOG:
    sys.addaudithook(_hook)
