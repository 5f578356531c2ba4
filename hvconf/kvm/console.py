"""Enough of a 16550 UART for a guest console: transmit, line status, DLAB.

`Serial16550(port, out).handle(io)` answers one port I/O exit: bytes written
to THR go to `out` (flushed at once), LSR reads say "transmitter empty"
(0x60), other registers read 0. No receive, no interrupts, no FIFO: a
guest that waits for input waits forever. Tests: tests/kvm/test_exits.py.
"""

from __future__ import annotations

from typing import BinaryIO, Protocol

from hvconf.kvm.exits import Io

THR, LCR, LSR = 0, 3, 5  # register offsets from the base port
LCR_DLAB = 0x80  # set: offsets 0 and 1 are the baud divisor, not THR/IER
LSR_THRE_TEMT = 0x60  # transmit holding register and transmitter empty


class Console(Protocol):
    def handle(self, io: Io) -> bytes | None: ...


class Serial16550:
    """A UART at `port`..`port`+7 writing transmitted bytes to `out`."""

    def __init__(self, port: int, out: BinaryIO) -> None:
        self.port = port
        self.out = out
        self.lcr = 0

    def handle(self, io: Io) -> bytes | None:
        """The bytes an "in" reads, b"" for a handled "out", None when the port is not ours."""
        reg = io.port - self.port
        if not 0 <= reg < 8:
            return None
        if io.direction == "in":
            value = LSR_THRE_TEMT if reg == LSR else self.lcr if reg == LCR else 0
            return bytes([value]) * io.length
        # the register is 8 bits wide: of a wider write only the low byte lands
        low_bytes = io.data[:: io.size]
        if reg == LCR:
            self.lcr = low_bytes[-1]
        elif reg == THR and not self.lcr & LCR_DLAB:
            self.out.write(low_bytes)
            self.out.flush()
        return b""


CONSOLE_KINDS = {"serial": Serial16550}
