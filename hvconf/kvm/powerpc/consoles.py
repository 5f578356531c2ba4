"""The PowerPC hypercall consoles: the sPAPR hvterm (vty) and the ePAPR byte channel.

Both write what the guest sends to `out` at once (flushed: the run's
output.Output, with the same raw/safe rendering and OutputError as the
serial console) and hand out what `feed()` queued, at most 16 bytes per
call, from any thread. They know the
terminal number or handle they answer to; the register packing of the
hypercalls lives in hypercalls.py. No ioctls, no KVM state.
Tests: tests/kvm/test_buffers_papr.py, tests/kvm/test_buffers_epapr.py.
"""

from __future__ import annotations

import atexit
import os
import threading

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from hvconf.kvm.devices import Sink

MAX_BYTES = 16  # H_PUT_TERM_CHAR / H_GET_TERM_CHAR and EV_BYTE_CHANNEL_MAX_BYTES


class _Line:
    """Output stream plus a locked input queue."""

    def __init__(self, out: Sink) -> None:
        self.out = out
        self._pending = bytearray()
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.out.flush()

    def feed(self, data: bytes) -> None:
        """Queue `data` as guest input (e.g. from a thread reading stdin)."""
        with self._lock:
            self._pending += data

    def read(self, limit: int) -> bytes:
        """Up to min(`limit`, 16) queued input bytes; b"" when there are none."""
        with self._lock:
            taken = bytes(self._pending[: max(0, min(limit, MAX_BYTES))])
            del self._pending[: len(taken)]
        return taken

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)


class HvTerm(_Line):
    """The vty at unit address `reg` (/vdevice/vty@reg); None answers to any terminal number."""

    def __init__(self, out: Sink, reg: int | None = None) -> None:
        super().__init__(out)
        self.reg = reg

    def owns(self, terminal: int) -> bool:
        # terminal 0 means "the default vty" (Linux early debug; QEMU's vty_lookup)
        return self.reg is None or terminal in (self.reg, 0)


class ByteChannel(_Line):
    """The ePAPR byte channel with hv-handle `handle` (hvconf's e500 tree uses 0)."""

    def __init__(self, out: Sink, handle: int = 0) -> None:
        super().__init__(out)
        self.handle = handle

    def owns(self, handle: int) -> bool:
        return handle == self.handle


class TerminalInput:
    """Keys typed on terminal `fd`, fed to `line` as the guest's console input (QEMU: -serial stdio)."""

    def __init__(self, fd: int, line: _Line) -> None:
        import termios
        import tty

        self.fd, self.line = fd, line
        self._saved: list[Any] | None = termios.tcgetattr(fd)
        tty.setraw(fd, termios.TCSANOW)
        atexit.register(self.restore)
        self._thread = threading.Thread(target=self._pump, name="console-input", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while True:
            try:
                data = os.read(self.fd, MAX_BYTES)
            except OSError:
                return
            if not data:
                return
            self.line.feed(data)

    def restore(self) -> None:
        """The terminal's mode as it was before the run (idempotent)."""
        import termios

        saved, self._saved = self._saved, None
        if saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)
            except termios.error:
                pass


_READERS: dict[int, TerminalInput] = {}  # fd -> its reader: one per process, whatever the restarts


def terminal_input(line: _Line, fd: int = 0) -> TerminalInput | None:
    """Input from `fd` when it is a terminal; None otherwise (a pipe, a file, /dev/null: never read).
    A guest restarted after a reboot gets the reader the first boot started, fed to its new console."""
    if not os.isatty(fd):
        return None
    reader = _READERS.get(fd)
    if reader is None:
        reader = _READERS[fd] = TerminalInput(fd, line)
    reader.line = line
    return reader


HV_CONSOLE_KINDS = {"hvterm": HvTerm, "byte_channel": ByteChannel}


def hv_console(console: Mapping[str, Any], out: Sink) -> HvTerm | ByteChannel:
    """The console a plan's `console` entry names ({"kind": "hvterm", "reg": N} or {"kind": "byte_channel"})."""
    kind = console.get("kind")
    if kind == "hvterm":
        return HvTerm(out, console.get("reg"))
    if kind == "byte_channel":
        return ByteChannel(out, console.get("handle", 0))
    raise ValueError(f"console kind {kind!r} is not a hypercall console ({', '.join(HV_CONSOLE_KINDS)})")
