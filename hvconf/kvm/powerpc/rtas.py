"""RTAS calls that reach the launcher through H_RTAS (0xF000), served by token.

r4 holds the guest-real address of a big-endian argument block {token,
nargs, nret, args[nargs], rets[nret]} (32-bit words). The whole block is
bounds-checked inside guest memory before anything is read or done; the
services (display-character, power-off, system-reboot, get-time-of-day) check
nargs/nret as QEMU does and answer RTAS status -3 when they differ. Tokens
come from the plan's `launcher.papr.rtas`. Tests: tests/kvm/test_buffers_papr.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from hvconf.abi.hcalls import papr_return_codes
from hvconf.kvm.guest_phys import GuestAccessError
from hvconf.kvm.reply import Outcome, Reply
from hvconf.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from hvconf.kvm.guest_phys import GuestPhys
    from hvconf.kvm.powerpc.consoles import HvTerm

RTAS_SUCCESS, RTAS_HARDWARE_ERROR, RTAS_PARAMETER_ERROR = 0, -1, -3
HEADER = 12  # token, nargs, nret
MAX_ARGS = MAX_RETS = 32  # far above any RTAS service's; a bigger count is a corrupt block
REAL_ADDRESS_MASK = 0x0FFF_FFFF_FFFF_FFFF  # the top 4 bits of a real-mode address are ignored (KVM_PAM)
EARLY_DISPLAY_CHARACTER = 0xA  # old Linux early debug calls display-character by this token (QEMU, kvmtool)


class Result(Record):
    """A service's rets (status first), what the run does next, and a trace line."""

    __slots__ = ("rets", "outcome", "note")
    _defaults = {"outcome": Outcome.CONTINUE, "note": ""}
    rets: tuple[int, ...]
    outcome: str  # a reply.Outcome
    note: str


Service = Callable[["Rtas", tuple[int, ...], int], Result]


def _display_character(rtas: Rtas, args: tuple[int, ...], nret: int) -> Result:
    if not args:
        return Result((RTAS_PARAMETER_ERROR,), note="display-character without its argument")
    if rtas.console is None:
        return Result((RTAS_HARDWARE_ERROR,), note="display-character: no console")
    rtas.console.write(bytes([args[0] & 0xFF]))
    return Result((RTAS_SUCCESS,))


def _power_off(rtas: Rtas, args: tuple[int, ...], nret: int) -> Result:
    if len(args) != 2 or nret != 1:
        return Result((RTAS_PARAMETER_ERROR,), note=f"power-off with nargs {len(args)} nret {nret} (wants 2, 1)")
    return Result((RTAS_SUCCESS,), Outcome.POWER_OFF, "RTAS power-off")


def _system_reboot(rtas: Rtas, args: tuple[int, ...], nret: int) -> Result:
    if args or nret != 1:
        return Result((RTAS_PARAMETER_ERROR,), note=f"system-reboot with nargs {len(args)} nret {nret} (wants 0, 1)")
    return Result((RTAS_SUCCESS,), Outcome.RESET, "RTAS system-reboot")


def _get_time_of_day(rtas: Rtas, args: tuple[int, ...], nret: int) -> Result:
    if nret != 8:
        return Result((RTAS_PARAMETER_ERROR,), note=f"get-time-of-day with nret {nret} (wants 8)")
    now = rtas.clock()
    t = time.gmtime(now)
    nanoseconds = int((now % 1) * 1e9)
    return Result((RTAS_SUCCESS, t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, nanoseconds))


SERVICES: dict[str, Service] = {
    "display-character": _display_character,
    "power-off": _power_off,
    "system-reboot": _system_reboot,
    "get-time-of-day": _get_time_of_day,
}


class Rtas:
    """The launcher's RTAS. Attributes: `token2name` (served), `unserved` (token -> name of the
    declared services this launcher does not implement: the executor can warn about them)."""

    def __init__(
        self,
        tokens: Mapping[str, int],
        memory: GuestPhys | None,
        console: HvTerm | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.memory, self.console, self.clock = memory, console, clock
        self.token2name = {token: name for name, token in tokens.items() if name in SERVICES}
        self.unserved = {token: name for name, token in tokens.items() if name not in SERVICES}
        if "display-character" in tokens:
            self.token2name.setdefault(EARLY_DISPLAY_CHARACTER, "display-character")
        codes = papr_return_codes()
        self.h_success, self.h_parameter = codes["H_SUCCESS"], codes["H_PARAMETER"]

    def call(self, address: int) -> Reply:
        """H_RTAS with r4 = `address`."""
        if self.memory is None:
            return Reply(self.h_parameter, note="H_RTAS: the launcher was given no guest memory")
        block = address & REAL_ADDRESS_MASK
        try:
            token, nargs, nret = _words(self.memory.read(block, HEADER))
            if nargs > MAX_ARGS or nret > MAX_RETS:
                return Reply(self.h_parameter, note=f"H_RTAS block at {block:#x}: nargs {nargs} nret {nret} "
                                                    f"(at most {MAX_ARGS} each)")  # fmt: skip
            args = _words(self.memory.read(block + HEADER, 4 * nargs))
            rets_at = block + HEADER + 4 * nargs
            self.memory.read(rets_at, 4 * nret)  # the rets must be writable guest memory too
        except GuestAccessError as err:
            return Reply(self.h_parameter, note=f"H_RTAS block at {block:#x}: {err}")
        name = self.token2name.get(token)
        if name is None:
            self._store(rets_at, (RTAS_PARAMETER_ERROR,), nret)
            what = f"{self.unserved[token]} is not implemented here" if token in self.unserved else "is unknown"
            return Reply(self.h_parameter, note=f"RTAS token {token:#x} {what}: status -3, H_PARAMETER")
        result = SERVICES[name](self, args, nret)
        self._store(rets_at, result.rets, nret)
        return Reply(self.h_success, outcome=result.outcome, note=result.note or f"RTAS {name}")

    def _store(self, at: int, rets: tuple[int, ...], nret: int) -> None:
        assert self.memory is not None
        words = rets[:nret]
        self.memory.write(at, b"".join((w & 0xFFFF_FFFF).to_bytes(4, "big") for w in words))


def _words(raw: bytes) -> tuple[int, ...]:
    return tuple(int.from_bytes(raw[i : i + 4], "big") for i in range(0, len(raw), 4))
