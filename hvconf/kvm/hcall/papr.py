"""sPAPR hcalls that reach the launcher as KVM_EXIT_PAPR_HCALL, dispatched by opcode.

Built from the plan's `launcher.papr` section: its `handlers` pick
implementations from IMPLEMENTATIONS (hvterm console, H_RTAS, H_SET_MODE,
the TCE calls for LIOBNs the kernel has no table for, `liobns` being the ones it has),
`rtas` gives the tokens, `unknown` the answer to everything else (kvmtool
and QEMU: H_FUNCTION). Registers as KVM hands them over: args[i] is r(4+i).
Term chars are packed big-endian, 8 per register. Holds the console, guest
memory and the H_SET_MODE endianness it recorded; issues no ioctl.
Tests: tests/kvm/test_buffers_papr.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import hvconf.abi
from hvconf.abi.hcalls import papr_return_codes
from hvconf.abi.tables import raw
from hvconf.kvm import exits
from hvconf.kvm.console_hv import MAX_BYTES, HvTerm
from hvconf.kvm.hcall.memory import GuestPhys
from hvconf.kvm.hcall.reply import Reply
from hvconf.kvm.hcall.rtas import Rtas

H_SET_MODE_ENDIAN_BIG, H_SET_MODE_ENDIAN_LITTLE = 0, 1  # mflags of resource LE (hvcall.h)
U64 = (1 << 64) - 1


def _chars(words: tuple[int, ...]) -> bytes:
    return b"".join((w & U64).to_bytes(8, "big") for w in words)


class PaprHandlers:
    """The launcher's sPAPR hcall table. Attributes: `opcode2name`, `rtas`, `unknown` (its return
    code), `interrupts_little_endian` (None until H_SET_MODE LE; then what LPCR[ILE] should become
    on every vCPU, which the executor applies with KVM_SET_ONE_REG)."""

    def __init__(self, section: Mapping[str, Any], console: HvTerm | None = None, memory: GuestPhys | None = None):
        self.codes = papr_return_codes()
        self.unknown = self.codes[section.get("unknown", "H_FUNCTION")]
        missing = sorted(set(section.get("handlers", ())) - set(IMPLEMENTATIONS))
        if missing:
            raise ValueError(f"the plan wants hcall handlers this launcher does not have: {', '.join(missing)}")
        self.opcode2name = {hvconf.abi.papr_hcall(n).opcode: n for n in section.get("handlers", ())}
        self.console = console
        self.rtas = Rtas(section.get("rtas", {}), memory, console)
        self.interrupts_little_endian: bool | None = None
        self.liobns = frozenset(section.get("liobns", ()))  # the TCE tables the kernel holds
        self.le_resource = raw("papr")["set_mode_resource"]["H_SET_MODE_RESOURCE_LE"]

    def handle(self, ex: exits.PaprHcall) -> Reply:
        name = self.opcode2name.get(ex.nr)
        if name is None:
            return Reply(self.unknown, note=f"{_name(ex.nr)} has no handler in the launcher")
        return IMPLEMENTATIONS[name](self, ex.args)

    def put_term_char(self, args: tuple[int, ...]) -> Reply:
        terminal, length = args[0], args[1]
        if self.console is None or not self.console.owns(terminal):
            return Reply(self.codes["H_PARAMETER"], note=f"H_PUT_TERM_CHAR to unknown terminal {terminal:#x}")
        if length > MAX_BYTES:
            return Reply(self.codes["H_PARAMETER"], note=f"H_PUT_TERM_CHAR of {length} bytes (at most {MAX_BYTES})")
        self.console.write(_chars(args[2:4])[:length])
        return Reply(self.codes["H_SUCCESS"])

    def get_term_char(self, args: tuple[int, ...]) -> Reply:
        terminal = args[0]
        if self.console is None or not self.console.owns(terminal):
            return Reply(self.codes["H_PARAMETER"], note=f"H_GET_TERM_CHAR from unknown terminal {terminal:#x}")
        taken = self.console.read(MAX_BYTES)
        data = taken.ljust(MAX_BYTES, b"\0")  # QEMU zero-fills the unused tail
        return Reply(self.codes["H_SUCCESS"], {4: len(taken), 5: int.from_bytes(data[:8], "big"),
                                               6: int.from_bytes(data[8:], "big")})  # fmt: skip

    def h_rtas(self, args: tuple[int, ...]) -> Reply:
        return self.rtas.call(args[0])

    def set_mode(self, args: tuple[int, ...]) -> Reply:
        mflags, resource, value1, value2 = args[0:4]
        if resource != self.le_resource:
            return Reply(self.unknown, note=f"H_SET_MODE resource {resource} is not served by the launcher")
        if value1:
            return Reply(self.codes["H_P3"], note="H_SET_MODE LE with value1 != 0")
        if value2:
            return Reply(self.codes["H_P4"], note="H_SET_MODE LE with value2 != 0")
        if mflags not in (H_SET_MODE_ENDIAN_BIG, H_SET_MODE_ENDIAN_LITTLE):
            return Reply(self.codes["H_UNSUPPORTED_FLAG_START"], note=f"H_SET_MODE LE with mflags {mflags}")
        self.interrupts_little_endian = mflags == H_SET_MODE_ENDIAN_LITTLE
        endian = "little" if self.interrupts_little_endian else "big"
        return Reply(self.codes["H_SUCCESS"], note=f"H_SET_MODE: interrupts {endian}-endian (recorded)")


    def tce(self, args: tuple[int, ...]) -> Reply:
        """H_PUT_TCE, H_GET_TCE, H_STUFF_TCE, H_PUT_TCE_INDIRECT: r4 is the LIOBN in all four."""
        liobn = args[0]
        if liobn in self.liobns:  # the kernel holds this table and still passed the call up
            return Reply(self.codes["H_HARDWARE"], note=f"the kernel left a TCE call on its own table "
                                                        f"{liobn:#x} to userspace")  # fmt: skip
        return Reply(self.codes["H_PARAMETER"], note=f"no TCE table has LIOBN {liobn:#x}")


IMPLEMENTATIONS: dict[str, Callable[[PaprHandlers, tuple[int, ...]], Reply]] = {
    "H_PUT_TERM_CHAR": PaprHandlers.put_term_char,
    "H_GET_TERM_CHAR": PaprHandlers.get_term_char,
    "H_RTAS": PaprHandlers.h_rtas,
    "H_SET_MODE": PaprHandlers.set_mode,
    "H_PUT_TCE": PaprHandlers.tce,
    "H_GET_TCE": PaprHandlers.tce,
    "H_STUFF_TCE": PaprHandlers.tce,
    "H_PUT_TCE_INDIRECT": PaprHandlers.tce,
}


def _name(opcode: int) -> str:
    try:
        return f"{hvconf.abi.papr_hcall(opcode).name} ({opcode:#x})"
    except hvconf.abi.AbiError:
        return f"hcall {opcode:#x}"
