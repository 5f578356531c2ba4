"""The rest of a PC a Linux guest probes, for plans that boot Linux: an i8042 controller with nothing
behind it, a CMOS RTC stub, and ports nobody answers that read all ones.

`PcPorts(console).handle(io)` answers what the console (the 16550) does not: the i8042 at
0x60/0x64 (I8042 below: its status, command byte and self-tests, as Firecracker's
devices/src/legacy/i8042.rs answers them; the reset, 0xFE to 0x64, is devices.py's port write
that ends the run), the CMOS index/data ports 0x70/0x71 (a clock that reads 00:00:00, 24-hour BCD, never updating, so
Linux's RTC read does not wait for an update that never ends), and reads of the ports in
FLOATING as 0xff, what an ISA or PCI read of nothing returns on a PC: a PCI configuration
read of 0xffff means "no device" (Linux's early PCI quirks would take the zeros the generic
loop answers for a device in every slot), a Super-I/O or COM2-4 of 0xff for "absent". Every
other port is left to the generic loop (reads 0). Writes are taken and dropped. Facts:
docs/x86-linux.md. Tests: tests/kvm/test_linux_boot.py, tests/x86.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from hvconf.kvm.devices import Console
    from hvconf.kvm.ioctls.kvm_run import Io

CMOS_INDEX, CMOS_DATA = 0x70, 0x71
NMI_DISABLE = 0x80  # bit 7 of a write to the index port masks NMIs; the index is the low 7 bits
# MC146818 status registers: A (divider on, no update in progress), B (24-hour, BCD), D (valid RAM and time)
CMOS = {0x0A: 0x26, 0x0B: 0x02, 0x0D: 0x80, 0x07: 0x01, 0x08: 0x01}  # and the date 2000-01-01
# (first port, count) of the ports that read 0xff: POST 0x80, DMA page 0x87, system control port B 0x61
# (no PIT speaker model), Super-I/O configuration 0x2e and 0x4e, COM4, COM2, COM3, PCI configuration
FLOATING = ((0x61, 1), (0x80, 1), (0x87, 1), (0x2E, 2), (0x4E, 2), (0x2E8, 8), (0x2F8, 8), (0x3E8, 8),
            (0xCF8, 8))


I8042_DATA, I8042_COMMAND = 0x60, 0x64
STATUS_OBF, STATUS_SYS = 0x01, 0x04  # output buffer full; system flag (self-test passed)
CTR_DEFAULT = 0x47  # keyboard interrupt, system flag, translation: what a PC's BIOS leaves
READ_CTR, WRITE_CTR = 0x20, 0x60  # the command byte: read it into the output buffer; the next data byte is it
# command -> the byte it puts in the output buffer: controller and port self-tests passed
I8042_REPLIES = {0xAA: 0x55, 0xAB: 0x00, 0xA9: 0x00}
WITH_DATA = (WRITE_CTR, 0xD1, 0xD2, 0xD3, 0xD4)  # commands whose data byte follows on port 0x60


class I8042:
    """An 8042 keyboard controller with no keyboard or mouse: it answers the controller's own
    commands, so Linux's i8042 probe finishes at once instead of polling for 10,000 replies."""

    def __init__(self) -> None:
        self.ctr = CTR_DEFAULT
        self.out: list[int] = []
        self.pending: int | None = None  # a command waiting for its data byte

    def read(self, port: int) -> int:
        if port == I8042_COMMAND:
            return STATUS_SYS | (STATUS_OBF if self.out else 0)
        return self.out.pop(0) if self.out else 0

    def write(self, port: int, value: int) -> None:
        if port == I8042_COMMAND:
            self.pending = value if value in WITH_DATA else None
            if value == READ_CTR:
                self.out.append(self.ctr)
            elif value in I8042_REPLIES:
                self.out.append(I8042_REPLIES[value])
        elif self.pending == WRITE_CTR:
            self.ctr, self.pending = value, None
        else:
            self.pending = None  # a byte for the absent keyboard or mouse: nobody answers


def _floating(port: int) -> bool:
    return any(first <= port < first + count for first, count in FLOATING)


class PcPorts:
    """A console (the 16550) with a PC's CMOS stub and floating ports behind it."""

    def __init__(self, console: Console | None) -> None:
        self.console = console
        self.index = 0
        self.i8042 = I8042()

    def handle(self, io: Io) -> bytes | None:
        if self.console is not None and (answer := self.console.handle(io)) is not None:
            return answer
        if io.port in (I8042_DATA, I8042_COMMAND):
            if io.direction == "out":
                self.i8042.write(io.port, io.data[0])
                return b""
            return (bytes([self.i8042.read(io.port)]) + bytes(io.size - 1)) * io.count
        if io.port in (CMOS_INDEX, CMOS_DATA):
            if io.direction == "out":
                if io.port == CMOS_INDEX:
                    self.index = io.data[0] & ~NMI_DISABLE
                return b""
            value = CMOS.get(self.index, 0) if io.port == CMOS_DATA else 0xFF
            return (bytes([value]) + bytes(io.size - 1)) * io.count
        if _floating(io.port):
            return b"\xff" * io.length if io.direction == "in" else b""
        return None
