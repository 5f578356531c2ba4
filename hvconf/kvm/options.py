"""The launcher's option values, checked: one function per kind of value, shared with `hvconf run`.

Each check takes the text of a command line value and returns the value, or
raises ValueError with what was expected (one line, quoting the text), so
`launch.py` and `hvconf run` (hvconf/cli/main.py, through argparse) refuse the
same values with the same words and status 2. Imports nothing: the
launcher's start-up pays for none of it. Tests: tests/kvm/test_options.py.
"""

from __future__ import annotations

DEFAULT_TIMEOUT = 5.0
# A year. sigtimedwait takes at most a time_t of seconds (`--timeout 1e309` or `inf` raised
# OverflowError inside the watch); a longer watchdog is no watchdog.
MAX_TIMEOUT = 365 * 24 * 3600.0
CONSOLE_MODES = ("auto", "safe", "raw")  # auto: raw on a terminal, safe anywhere else (output.py)
ON_REBOOT = ("exit", "restart")  # status.ON_REBOOT, without importing it: what a guest's reboot does


def seconds(text: str) -> float:
    """A watchdog timeout: a finite number of seconds above 0 and at most MAX_TIMEOUT."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= MAX_TIMEOUT:  # NaN fails both comparisons
        raise ValueError(f"expected a number of seconds above 0 and at most {MAX_TIMEOUT:.0f} (a year), "
                         f"not {text!r}")
    return value


def console_mode(text: str) -> str:
    if text not in CONSOLE_MODES:
        raise ValueError(f"expected {', '.join(CONSOLE_MODES[:-1])} or {CONSOLE_MODES[-1]}, not {text!r}")
    return text


def on_reboot(text: str) -> str:
    if text not in ON_REBOOT:
        raise ValueError(f"expected {' or '.join(ON_REBOOT)}, not {text!r}")
    return text


def file_name(text: str) -> str:
    """A file to read or write: whether it is a usable one is the opener's question."""
    if not text or "\0" in text:
        raise ValueError(f"expected a file name, not {text!r}")
    return text


def name(text: str) -> str:
    """A name to look up (a VM): whether one has it is the caller's question."""
    if not text or "\0" in text:
        raise ValueError(f"expected a name, not {text!r}")
    return text
