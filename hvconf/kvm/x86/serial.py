"""Enough of a 16550 UART on x86 port I/O for Linux's serial console and the sample guests.

`Serial16550(port, out, irq).handle(io)` answers one port I/O exit at
`port`..`port`+7. Bytes written to THR go to `out` (the run's output.Output,
which renders and writes them, or raises OutputError), flushed at once
(dropped in loopback mode, as the chip would). DLAB switches offsets 0/1
to the divisor latch; IER, LCR, MCR, SCR and the divisor read back what was
written; LSR says "transmitter empty" and whether received data waits; MSR
shows DCD, DSR and CTS, or the MCR outputs in loopback. `receive(data)`
queues input (the launcher's terminal) for RBR. With `irq` (a callable
taking the line's level: KVM_IRQ_LINE on IRQ 4 when the VM has the in-kernel
irqchip) the chip interrupts as QEMU's hw/char/serial.c serial_update_irq
does: received data when IER enables it, else "transmitter empty" once a
byte was sent or the interrupt was enabled, until IIR is read; IIR names the
source. Without `irq`, IIR says "no interrupt" and the guest polls.
Thread-safe: vCPUs and the input reader share it.
Tests: tests/kvm/test_exits.py, tests/kvm/test_modes.py, tests/kvm/test_linux_boot.py.
"""

from __future__ import annotations

import _thread  # threading.Lock is _thread.allocate_lock: importing threading costs a launch ~1 ms

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Callable

    from hvconf.kvm.devices import Sink
    from hvconf.kvm.ioctls.kvm_run import Io
else:
    from _collections import deque  # collections.deque itself: importing collections costs a launch ~2 ms


# register offsets from the base port
RBR_THR_DLL, IER_DLM, IIR_FCR, LCR, MCR, LSR, MSR, SCR = range(8)
LCR_DLAB = 0x80  # set: offsets 0 and 1 are the baud divisor, not THR/IER
LSR_THRE_TEMT = 0x60  # transmit holding register and transmitter empty
LSR_DR = 0x01  # data ready
IER_RDI, IER_THRI = 0x01, 0x02  # interrupt on received data, on transmitter empty
IIR_NO_INTERRUPT, IIR_FIFO_ENABLED = 0x01, 0xC0
IIR_THRI, IIR_RDI = 0x02, 0x04  # the source IIR names
RX_LIMIT = 4096  # input queued beyond this is dropped, as a real FIFO overruns
FCR_ENABLE = 0x01
MCR_LOOP = 0x10
MSR_DCD_DSR_CTS = 0xB0  # what QEMU's 16550 reports with nothing attached


class Serial16550:
    """A UART at `port`..`port`+7 writing transmitted bytes to `out`."""

    def __init__(self, port: int, out: Sink, irq: Callable[[int], object] | None = None) -> None:
        self.port = port
        self.out = out
        self.regs = {IER_DLM: 0, LCR: 0, MCR: 0, SCR: 0, "fcr": 0, "dll": 0x0C, "dlm": 0}  # 9600 baud divisor
        self._lock = _thread.allocate_lock()
        self.irq = irq
        self.rx: deque[int] = deque()
        self.thr_pending = False  # "transmitter empty" waits to be reported (QEMU: thr_ipending)
        self.line = 0  # the interrupt line's level as last set

    def receive(self, data: bytes) -> None:
        """Queue input for the guest (RBR) and raise the interrupt if it is enabled."""
        with self._lock:
            self.rx.extend(data[: max(0, RX_LIMIT - len(self.rx))])
            self._update()

    def _iir(self) -> int:
        ier = self.regs[IER_DLM]
        if ier & IER_RDI and self.rx:
            return IIR_RDI
        if ier & IER_THRI and self.thr_pending:
            return IIR_THRI
        return IIR_NO_INTERRUPT

    def _update(self) -> None:
        """Set the interrupt line to what IIR says, when it changes (called with the lock held)."""
        if self.irq is None:
            return
        level = int(self._iir() != IIR_NO_INTERRUPT)
        if level != self.line:
            self.line = level
            self.irq(level)

    def handle(self, io: Io) -> bytes | None:
        """The bytes an "in" reads, b"" for a handled "out", None when the port is not ours."""
        reg = io.port - self.port
        if not 0 <= reg < 8:
            return None
        with self._lock:
            if io.direction == "in":
                # an 8-bit register: wider reads see zeros above it; `rep insb` reads it each time
                data = b"".join(bytes([self._read(reg)]) + bytes(io.size - 1) for _ in range(io.count))
                self._update()
                return data
            sent = bytearray()
            for value in io.data[:: io.size]:  # of a wider write only the low byte lands
                self._write(reg, value, sent)
            if sent:
                self.out.write(sent)
                self.out.flush()
            self._update()
            return b""

    @property
    def _dlab(self) -> bool:
        return bool(self.regs[LCR] & LCR_DLAB)

    def _read(self, reg: int) -> int:
        if reg == RBR_THR_DLL:
            if self._dlab:
                return self.regs["dll"]
            return self.rx.popleft() if self.rx else 0
        if reg == IER_DLM:
            return self.regs["dlm"] if self._dlab else self.regs[IER_DLM]
        if reg == IIR_FCR:
            iir = self._iir() if self.irq is not None else IIR_NO_INTERRUPT
            if iir == IIR_THRI:
                self.thr_pending = False  # reading IIR acknowledges "transmitter empty"
            return iir | (IIR_FIFO_ENABLED if self.regs["fcr"] & FCR_ENABLE else 0)
        if reg == LSR:
            return LSR_THRE_TEMT | (LSR_DR if self.rx else 0)
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
            else:
                if not self.regs[MCR] & MCR_LOOP:
                    sent.append(value)
                self.thr_pending = True  # sent at once: the holding register is empty again
        elif reg == IER_DLM:
            if not self._dlab and value & IER_THRI and not self.regs[IER_DLM] & IER_THRI:
                self.thr_pending = True  # enabling the interrupt while THR is empty raises it
            self.regs["dlm" if self._dlab else IER_DLM] = value if self._dlab else value & 0x0F
        elif reg == IIR_FCR:
            self.regs["fcr"] = value & FCR_ENABLE  # reset bits 1-2 self-clear; nothing is queued anyway
        elif reg == MCR:
            self.regs[MCR] = value & 0x1F
        elif reg in (LCR, SCR):
            self.regs[reg] = value
        # LSR and MSR are read-only; writes are ignored as on the chip
