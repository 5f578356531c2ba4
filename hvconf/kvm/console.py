"""Enough of a 16550 UART for Linux's early console and the sample guests: output only.

`Serial16550(port, out).handle(io)` answers one port I/O exit at
`port`..`port`+7. Bytes written to THR go to `out` (the run's output.Output,
which renders and writes them, or raises OutputError), flushed at once
(dropped in loopback mode, as the chip would). DLAB switches offsets 0/1
to the divisor latch; IER, LCR, MCR, SCR and the divisor read back what was
written; LSR always says "transmitter empty, no data"; IIR says "no
interrupt" (with the FIFO bits once FCR enabled them); MSR shows DCD, DSR
and CTS, or the MCR outputs in loopback. No receive, no interrupts: a
guest that waits for input waits forever. Thread-safe: vCPUs share it.
Tests: tests/kvm/test_exits.py, tests/kvm/test_modes.py.
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Protocol

    from hvconf.kvm.exits import Io

    class Console(Protocol):
        def handle(self, io: Io) -> bytes | None: ...

    class Sink(Protocol):
        """Where a console's bytes go: the run's output.Output, or any binary stream in tests."""

        def write(self, data: bytes | bytearray, /) -> int: ...

        def flush(self) -> None: ...


# register offsets from the base port
RBR_THR_DLL, IER_DLM, IIR_FCR, LCR, MCR, LSR, MSR, SCR = range(8)
LCR_DLAB = 0x80  # set: offsets 0 and 1 are the baud divisor, not THR/IER
LSR_THRE_TEMT = 0x60  # transmit holding register and transmitter empty
IIR_NO_INTERRUPT, IIR_FIFO_ENABLED = 0x01, 0xC0
FCR_ENABLE = 0x01
MCR_LOOP = 0x10
MSR_DCD_DSR_CTS = 0xB0  # what QEMU's 16550 reports with nothing attached


class Serial16550:
    """A UART at `port`..`port`+7 writing transmitted bytes to `out`."""

    def __init__(self, port: int, out: Sink) -> None:
        self.port = port
        self.out = out
        self.regs = {IER_DLM: 0, LCR: 0, MCR: 0, SCR: 0, "fcr": 0, "dll": 0x0C, "dlm": 0}  # 9600 baud divisor
        self._lock = threading.Lock()

    def handle(self, io: Io) -> bytes | None:
        """The bytes an "in" reads, b"" for a handled "out", None when the port is not ours."""
        reg = io.port - self.port
        if not 0 <= reg < 8:
            return None
        with self._lock:
            if io.direction == "in":
                # an 8-bit register: wider reads see zeros above it; `rep insb` sees it each time
                return (bytes([self._read(reg)]) + bytes(io.size - 1)) * io.count
            sent = bytearray()
            for value in io.data[:: io.size]:  # of a wider write only the low byte lands
                self._write(reg, value, sent)
            if sent:
                self.out.write(sent)
                self.out.flush()
            return b""

    @property
    def _dlab(self) -> bool:
        return bool(self.regs[LCR] & LCR_DLAB)

    def _read(self, reg: int) -> int:
        if reg == RBR_THR_DLL:
            return self.regs["dll"] if self._dlab else 0  # no received data
        if reg == IER_DLM:
            return self.regs["dlm"] if self._dlab else self.regs[IER_DLM]
        if reg == IIR_FCR:
            return IIR_NO_INTERRUPT | (IIR_FIFO_ENABLED if self.regs["fcr"] & FCR_ENABLE else 0)
        if reg == LSR:
            return LSR_THRE_TEMT
        if reg == MSR:
            mcr = self.regs[MCR]
            if mcr & MCR_LOOP:  # loopback: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD
                return ((mcr & 0x02) << 3) | ((mcr & 0x01) << 5) | ((mcr & 0x04) << 4) | ((mcr & 0x08) << 4)
            return MSR_DCD_DSR_CTS
        return self.regs[reg]  # LCR, MCR, SCR

    def _write(self, reg: int, value: int, sent: bytearray) -> None:
        if reg == RBR_THR_DLL:
            if self._dlab:
                self.regs["dll"] = value
            elif not self.regs[MCR] & MCR_LOOP:
                sent.append(value)
        elif reg == IER_DLM:
            self.regs["dlm" if self._dlab else IER_DLM] = value if self._dlab else value & 0x0F
        elif reg == IIR_FCR:
            self.regs["fcr"] = value & FCR_ENABLE  # reset bits 1-2 self-clear; nothing is queued anyway
        elif reg == MCR:
            self.regs[MCR] = value & 0x1F
        elif reg in (LCR, SCR):
            self.regs[reg] = value
        # LSR and MSR are read-only; writes are ignored as on the chip


CONSOLE_KINDS = {"serial": Serial16550}
