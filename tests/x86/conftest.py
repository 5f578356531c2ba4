"""The x86 suite's shared boot: every case of x86_cases.py is built here (on the development machine,
by the compiler), packed into one payload with hvconf's runtime, and run in ONE boot of the emulated
x86_64 host (kvm_amd under TCG, tests/hosts/x86.py). The boot starts in a background process as
soon as collection ends, so it runs beside the other tests and the POWER boots; the tests then read
its cases. Skipped only when the host cannot be had here and HVCONF_X86_REQUIRED is unset; CI sets it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from hosts import emulated
from hosts.session import Background
from hosts.x86 import HOST

from .x86_cases import CASES, Built, build_case

FIXTURE = "x86_boot"
BOOT_TIMEOUT = 600.0  # s: the whole boot's wall-clock bound (it takes 30-80 s on 2 shared cores)
CASE_TIMEOUT = 120  # s: init's bound per case; each launcher's own watchdog is far shorter
Result = tuple[emulated.Boot, dict[str, Built]]


class Suite:
    """This session's boot: started at most once, by start()."""

    background: Background | None = None
    built: dict[str, Built] = {}
    folder: Path | None = None
    reason: str | None = None  # why the host is unavailable here
    error: str | None = None  # why the payload could not be built (a failure wherever it happens)
    summary = ""  # the boot's figures, for the end of the test report


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(FIXTURE in getattr(item, "fixturenames", ()) for item in session.items):
        start()


def start() -> None:
    """Build the payload here, then prepare and boot the host in a background process."""
    if Suite.background is not None or Suite.reason is not None or Suite.error is not None:
        return
    Suite.reason = HOST.unavailable_reason()
    if Suite.reason is not None:
        return
    folder = Path(tempfile.mkdtemp(prefix="hvconf-x86-suite-"))
    payload = folder / "payload"
    Suite.folder = folder
    try:
        Suite.built = {c.name: build_case(c, payload / "cases" / c.name, folder / "src") for c in CASES}
    except Exception as err:  # noqa: BLE001 - a pytest hook must not raise: the tests report it
        Suite.error = f"building the x86 cases failed: {type(err).__name__}: {err}"
        return
    Suite.background = Background("x86", payload, HOST.cache_root(), BOOT_TIMEOUT, CASE_TIMEOUT).start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if Suite.background is not None:
        Suite.background.stop()  # a session that ended before the boot (-x, Ctrl-C) leaves no QEMU behind
        try:
            Suite.background.result()
        except Exception:  # noqa: BLE001 - reported by the tests that read it, if any ran
            pass
    if Suite.folder is not None:
        shutil.rmtree(Suite.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def x86_boot() -> Result:
    """The session's boot of the emulated x86_64 host and how each case was built."""
    start()  # a no-op unless collection did not see the fixture (requested dynamically)
    if Suite.error is not None:
        pytest.fail(Suite.error)
    background = Suite.background
    try:
        if background is not None:
            base, boot = background.result()
    except emulated.HostUnavailable as err:
        Suite.reason = str(err)
    if background is None or Suite.reason is not None:
        if HOST.required():
            pytest.fail(f"HVCONF_X86_REQUIRED is set but the emulated x86_64 host is unavailable: {Suite.reason}")
        pytest.skip(f"emulated x86_64 host unavailable ({Suite.reason}); HVCONF_X86_REQUIRED=1 makes this a failure")
    slowest = max(boot.cases, key=lambda c: c.ms or 0)
    Suite.summary = (f"emulated x86_64: {len(boot.cases)} cases in one boot of {boot.seconds:.1f} s (/init at "
                     f"{boot.booted_ms} ms, kvm_amd at {boot.host.get('kvm_ms')} ms); prepared and booted in the "
                     f"background in {background.seconds:.1f} s from the end of collection; base {base.key}; "
                     f"slowest case {slowest.name} {slowest.ms / 1000:.1f} s")
    return boot, Suite.built


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if Suite.summary:
        terminalreporter.write_line(Suite.summary)
