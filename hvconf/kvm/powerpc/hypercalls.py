"""PowerPC hypercalls that reach the launcher: sPAPR's by opcode, ePAPR's by token, and their registers.

sPAPR (KVM_EXIT_PAPR_HCALL), built from the plan's `launcher.papr` section:
its `handlers` pick implementations from PAPR_IMPLEMENTATIONS (hvterm
console, H_RTAS, H_SET_MODE, the TCE calls for LIOBNs the kernel has no
table for, `liobns` being the ones it has), `rtas` gives the tokens (rtas.py),
`unknown` the answer to everything else (kvmtool and QEMU: H_FUNCTION).
What a booting Linux needs besides: H_REGISTER_PROC_TBL (QEMU spapr_hcall.c
h_register_process_table: the new process-table entry goes to KVM through the
`configure_mmu` callable the devices give, KVM_PPC_CONFIGURE_V3_MMU), H_RANDOM
(8 bytes of getrandom(2), where the kernel does not serve it), H_CEDE (answered
at once when the definition sends it here: the guest's idle loop spins).
Registers as KVM hands them over: args[i] is r(4+i). Term chars are packed
big-endian, 8 per register. The handlers hold the console, guest memory and
the H_SET_MODE endianness they recorded (`interrupts_little_endian`, which
exits.py applies to LPCR[ILE] on every vCPU).

ePAPR (the proposed KVM_EXIT_EPAPR_HCALL: docs/kernel-facts.md#the-unmerged-epapr-proposal),
from `launcher.epapr`: dispatch by token (r11): the byte channel console
(EV_BYTE_CHANNEL_SEND, _RECEIVE, _POLL: r3 handle, r4 count, r5..r8 four
bytes each, big-endian in the low word, as Linux's epapr_hcalls.h packs
them) and the proposal's KVM_HC_VM_RESET / KVM_HC_VM_SHUTDOWN, whose tokens
exist only when an overrides file numbers them. Anything else answers the
plan's `unknown` (EV_UNIMPLEMENTED, as KVM does).

`handlers_for(launcher, console, memory, proposed)` builds the table a plan's
section asks for; `complete(run, exit, reply)` stores a Reply where the
kernel reads it (sPAPR: ret -> r3, args[i] -> r4+i; ePAPR: args[i] <-> r3+i).
Issues no ioctl. Tests: tests/kvm/test_buffers_papr.py, tests/kvm/test_buffers_epapr.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import hvconf.abi
from hvconf.abi.hcalls import epapr_data, papr_return_codes
from hvconf.abi.tables import raw
from hvconf.kvm.ioctls.kvm_run import EpaprHcall, KvmRun, PaprHcall
from hvconf.kvm.powerpc.consoles import MAX_BYTES, ByteChannel, HvTerm
from hvconf.kvm.powerpc.rtas import Rtas
from hvconf.kvm.reply import Outcome, Reply

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from hvconf.kvm.guest_phys import GuestPhys

H_SET_MODE_ENDIAN_BIG, H_SET_MODE_ENDIAN_LITTLE = 0, 1  # mflags of resource LE (hvcall.h)
U64 = (1 << 64) - 1
TX_SPACE = 4096  # what POLL reports free: output is written synchronously, the queue never fills
WORD = 0xFFFF_FFFF
BYTE_CHANNEL = ("EV_BYTE_CHANNEL_SEND", "EV_BYTE_CHANNEL_RECEIVE", "EV_BYTE_CHANNEL_POLL")
PAPR_FIRST_ARG, PAPR_LAST_ARG = 4, 12  # papr_hcall.args[0..8] are r4..r12, copied back on entry
# H_REGISTER_PROC_TBL flags (asm/hvcall.h PROC_TABLE_*), and the process-table entry's fields
PROC_TABLE_MODIFY, PROC_TABLE_REGISTER, PROC_TABLE_RADIX, PROC_TABLE_HPT_PT, PROC_TABLE_GTSE = 0x10, 0x8, 0x4, 0x2, 0x1
PROC_TABLE_FLAGS = 0x1F
PATB_SIZE_MAX = 24  # log2(table size) - 12, at most (QEMU: H_P4 above)
RANDOM_BYTES = 8
# The proposal (docs/kernel-facts.md#the-unmerged-epapr-proposal) fills args[0..7] from r3..r10
# and returns outputs in r4..r10;
# hvconf reads args[i] <-> r(3+i) both ways, as papr_hcall does, so untouched args keep their registers.
EPAPR_FIRST_ARG, EPAPR_FIRST_OUT, EPAPR_LAST_ARG = 3, 4, 10


# -- sPAPR --

def _chars(words: tuple[int, ...]) -> bytes:
    return b"".join((w & U64).to_bytes(8, "big") for w in words)


class PaprHandlers:
    """The launcher's sPAPR hcall table. Attributes: `opcode2name`, `rtas`, `unknown` (its return
    code), `interrupts_little_endian` (None until H_SET_MODE LE; then what LPCR[ILE] should become
    on every vCPU, which the executor applies with KVM_SET_ONE_REG)."""

    def __init__(self, section: Mapping[str, Any], console: HvTerm | None = None, memory: GuestPhys | None = None,
                 configure_mmu: Callable[[int, int], int] | None = None):
        self.codes = papr_return_codes()
        self.unknown = self.codes[section.get("unknown", "H_FUNCTION")]
        missing = sorted(set(section.get("handlers", ())) - set(PAPR_IMPLEMENTATIONS))
        if missing:
            raise ValueError(f"the plan wants hcall handlers this launcher does not have: {', '.join(missing)}")
        self.opcode2name = {hvconf.abi.papr_hcall(n).opcode: n for n in section.get("handlers", ())}
        self.console = console
        self.rtas = Rtas(section.get("rtas", {}), memory, console)
        self.interrupts_little_endian: bool | None = None
        self.liobns = frozenset(section.get("liobns", ()))  # the TCE tables the kernel holds
        self.le_resource = raw("papr")["set_mode_resource"]["H_SET_MODE_RESOURCE_LE"]
        mmuv3 = raw("papr")["mmuv3"]
        self.mmuv3 = mmuv3
        self.configure_mmu = configure_mmu  # KVM_PPC_CONFIGURE_V3_MMU(flags, process_table) -> 0 or -errno
        # the process-table entry as the plan's KVM_PPC_CONFIGURE_V3_MMU left it: PATB_GR for a radix guest
        self.patb_entry = mmuv3["PATB_GR"] if section.get("mmu") == "radix" else 0

    def handle(self, ex: PaprHcall) -> Reply:
        name = self.opcode2name.get(ex.nr)
        if name is None:
            return Reply(self.unknown, note=f"{_name(ex.nr)} has no handler in the launcher")
        return PAPR_IMPLEMENTATIONS[name](self, ex.args)

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


    def register_proc_tbl(self, args: tuple[int, ...]) -> Reply:
        """H_REGISTER_PROC_TBL(flags, base, page size, log2 size - 12), as QEMU's h_register_process_table."""
        flags, base, page_size, size = args[0:4]
        entry = self._process_table_entry(flags, base, page_size, size)
        if isinstance(entry, Reply):
            return entry
        if self.configure_mmu is None:
            return Reply(self.codes["H_HARDWARE"], note="H_REGISTER_PROC_TBL: the launcher has no VM to configure")
        mmu_flags = (self.mmuv3["KVM_PPC_MMUV3_RADIX"] if flags & PROC_TABLE_RADIX else 0) | \
            (self.mmuv3["KVM_PPC_MMUV3_GTSE"] if flags & PROC_TABLE_GTSE else 0)
        err = self.configure_mmu(mmu_flags, entry)
        note = f"KVM_PPC_CONFIGURE_V3_MMU(flags {mmu_flags:#x}, process_table {entry:#x})"
        if err:
            code = {-22: "H_PARAMETER", -19: "H_NOT_AVAILABLE"}.get(err, "H_HARDWARE")  # QEMU kvmppc_configure_v3_mmu
            return Reply(self.codes[code], note=f"{note} failed: {os.strerror(-err)}")
        self.patb_entry = entry
        return Reply(self.codes["H_SUCCESS"], note=note)

    def _process_table_entry(self, flags: int, base: int, page_size: int, size: int) -> int | Reply:
        """The new process-table entry, or the Reply that refuses the request."""
        gr = self.mmuv3["PATB_GR"]
        if flags & ~PROC_TABLE_FLAGS:
            return Reply(self.codes["H_PARAMETER"], note=f"H_REGISTER_PROC_TBL flags {flags:#x}")
        if not flags & PROC_TABLE_MODIFY:  # keep the current registration, in the same MMU mode
            if bool(flags & PROC_TABLE_RADIX) != bool(self.patb_entry & gr):
                return Reply(self.codes["H_PARAMETER"], note="H_REGISTER_PROC_TBL switches MMU without registering")
            return self.patb_entry
        if not flags & PROC_TABLE_REGISTER:  # deregister: a benign entry of the current mode
            return self.patb_entry & gr
        if not flags & PROC_TABLE_RADIX or flags & PROC_TABLE_HPT_PT:
            return Reply(self.codes["H_PARAMETER"], note="H_REGISTER_PROC_TBL of a hash process table is not served")
        if base & 0xFFF or base >> 60:
            return Reply(self.codes["H_P2"], note=f"H_REGISTER_PROC_TBL base {base:#x}")
        if page_size:
            return Reply(self.codes["H_P3"], note=f"H_REGISTER_PROC_TBL page size {page_size}")
        if size > PATB_SIZE_MAX:
            return Reply(self.codes["H_P4"], note=f"H_REGISTER_PROC_TBL size {size}")
        return gr | base | size

    def random(self, args: tuple[int, ...]) -> Reply:
        """H_RANDOM: 8 bytes from the host's getrandom(2) in r4."""
        return Reply(self.codes["H_SUCCESS"], {4: int.from_bytes(os.urandom(RANDOM_BYTES), "big")},
                     note="H_RANDOM from the launcher")

    def cede(self, args: tuple[int, ...]) -> Reply:
        """H_CEDE sent here by `disable H_CEDE`: answered at once (the guest's idle loop spins)."""
        return Reply(self.codes["H_SUCCESS"], note="H_CEDE in the launcher")

    def tce(self, args: tuple[int, ...]) -> Reply:
        """H_PUT_TCE, H_GET_TCE, H_STUFF_TCE, H_PUT_TCE_INDIRECT: r4 is the LIOBN in all four."""
        liobn = args[0]
        if liobn in self.liobns:  # the kernel holds this table and still passed the call up
            return Reply(self.codes["H_HARDWARE"], note=f"the kernel left a TCE call on its own table "
                                                        f"{liobn:#x} to userspace")  # fmt: skip
        return Reply(self.codes["H_PARAMETER"], note=f"no TCE table has LIOBN {liobn:#x}")


PAPR_IMPLEMENTATIONS: dict[str, Callable[[PaprHandlers, tuple[int, ...]], Reply]] = {
    "H_PUT_TERM_CHAR": PaprHandlers.put_term_char,
    "H_GET_TERM_CHAR": PaprHandlers.get_term_char,
    "H_RTAS": PaprHandlers.h_rtas,
    "H_SET_MODE": PaprHandlers.set_mode,
    "H_REGISTER_PROC_TBL": PaprHandlers.register_proc_tbl,
    "H_RANDOM": PaprHandlers.random,
    "H_CEDE": PaprHandlers.cede,
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


# -- ePAPR --


class EpaprHandlers:
    """The launcher's ePAPR table. Attributes: `token2name`, `unknown` (its status code),
    `unnumbered` (proposed hcalls the plan routes here that have no number, hence no token)."""

    def __init__(
        self,
        section: Mapping[str, Any],
        channel: ByteChannel | None = None,
        proposed: hvconf.abi.ProposedAbi | None = None,
    ) -> None:
        data = epapr_data()
        self.status = data["status"]
        self.unknown = self.status[section.get("unknown", "EV_UNIMPLEMENTED")]
        self.channel = channel
        names = [*section.get("handlers", BYTE_CHANNEL), *section.get("exits", ())]
        missing = sorted(set(names) - set(EPAPR_IMPLEMENTATIONS))
        if missing:
            raise ValueError(f"the plan wants ePAPR handlers this launcher does not have: {', '.join(missing)}")
        kvm_vendor = data["vendors"]["EV_KVM_VENDOR_ID"] << data["token_vendor_shift"]
        self.token2name: dict[int, str] = {}
        self.unnumbered: list[str] = []
        for name in names:
            if name in BYTE_CHANNEL:
                self.token2name[hvconf.abi.epapr_token(name).token] = name
                continue
            number = proposed.number(name) if proposed is not None else None
            if number is None:
                self.unnumbered.append(name)
            else:
                self.token2name[kvm_vendor | number] = name  # KVM_HCALL_TOKEN(number)

    def handle(self, ex: EpaprHcall) -> Reply:
        name = self.token2name.get(ex.nr)
        if name is None:
            return Reply(self.unknown, note=f"ePAPR token {ex.nr:#x} has no handler in the launcher")
        return EPAPR_IMPLEMENTATIONS[name](self, ex.args)

    def _channel(self, handle: int) -> ByteChannel | None:
        return self.channel if self.channel is not None and self.channel.owns(handle) else None

    def send(self, args: tuple[int, ...]) -> Reply:
        handle, count = args[0], args[1]
        channel = self._channel(handle)
        if channel is None or count > MAX_BYTES:
            return Reply(self.status["EV_EINVAL"], note=f"EV_BYTE_CHANNEL_SEND handle {handle:#x} count {count}")
        channel.write(b"".join((w & WORD).to_bytes(4, "big") for w in args[2:6])[:count])
        return Reply(self.status["EV_SUCCESS"], {4: count})

    def receive(self, args: tuple[int, ...]) -> Reply:
        handle, count = args[0], args[1]
        channel = self._channel(handle)
        if channel is None:
            return Reply(self.status["EV_EINVAL"], note=f"EV_BYTE_CHANNEL_RECEIVE handle {handle:#x}")
        taken = channel.read(min(count, MAX_BYTES))
        data = taken.ljust(MAX_BYTES, b"\0")
        words = {5 + i: int.from_bytes(data[4 * i : 4 * i + 4], "big") for i in range(4)}
        return Reply(self.status["EV_SUCCESS"], {4: len(taken), **words})

    def poll(self, args: tuple[int, ...]) -> Reply:
        channel = self._channel(args[0])
        if channel is None:
            return Reply(self.status["EV_EINVAL"], note=f"EV_BYTE_CHANNEL_POLL handle {args[0]:#x}")
        return Reply(self.status["EV_SUCCESS"], {4: channel.pending, 5: TX_SPACE})

    def vm_reset(self, args: tuple[int, ...]) -> Reply:
        return Reply(self.status["EV_SUCCESS"], outcome=Outcome.RESET, note="KVM_HC_VM_RESET")

    def vm_shutdown(self, args: tuple[int, ...]) -> Reply:
        return Reply(self.status["EV_SUCCESS"], outcome=Outcome.POWER_OFF, note="KVM_HC_VM_SHUTDOWN")


EPAPR_IMPLEMENTATIONS: dict[str, Callable[[EpaprHandlers, tuple[int, ...]], Reply]] = {
    "EV_BYTE_CHANNEL_SEND": EpaprHandlers.send,
    "EV_BYTE_CHANNEL_RECEIVE": EpaprHandlers.receive,
    "EV_BYTE_CHANNEL_POLL": EpaprHandlers.poll,
    "KVM_HC_VM_RESET": EpaprHandlers.vm_reset,
    "KVM_HC_VM_SHUTDOWN": EpaprHandlers.vm_shutdown,
}


# -- both --


def handlers_for(
    launcher: Mapping[str, Any],
    *,
    console: HvTerm | ByteChannel | None = None,
    memory: GuestPhys | None = None,
    proposed: hvconf.abi.ProposedAbi | None = None,
    configure_mmu: Callable[[int, int], int] | None = None,
) -> PaprHandlers | EpaprHandlers:
    """The handler table a plan's `launcher` section asks for ({"papr": ...} or {"epapr": ...})."""
    kinds = sorted(launcher)
    if len(kinds) != 1:
        raise ValueError(f"a plan's launcher section names one of papr, epapr; got {kinds}")
    kind, section = kinds[0], launcher[kinds[0]]
    if kind == "papr":
        if console is not None and not isinstance(console, HvTerm):
            raise ValueError("sPAPR hcalls serve an hvterm console, not a byte channel")
        return PaprHandlers(section, console, memory, configure_mmu)
    if kind == "epapr":
        if console is not None and not isinstance(console, ByteChannel):
            raise ValueError("ePAPR hcalls serve a byte channel console, not an hvterm")
        return EpaprHandlers(section, console, proposed)
    raise ValueError(f"unknown launcher section {kind!r} (papr, epapr)")


def _indices(regs: Mapping[int, int], first_arg: int, first_out: int, last: int, abi: str) -> dict[int, int]:
    bad = sorted(r for r in regs if not first_out <= r <= last)
    if bad:
        raise ValueError(f"{abi} returns outputs in r{first_out}..r{last}, not r{', r'.join(map(str, bad))}")
    return {r - first_arg: value for r, value in regs.items()}


def complete(run: KvmRun, ex: PaprHcall | EpaprHcall, reply: Reply) -> None:
    """Write `reply` to `run` as the answer to `ex`."""
    if isinstance(ex, PaprHcall):
        run.complete_papr_hcall(reply.ret, _indices(reply.regs, PAPR_FIRST_ARG, PAPR_FIRST_ARG, PAPR_LAST_ARG, "sPAPR"))
    elif isinstance(ex, EpaprHcall):
        run.complete_epapr_hcall(reply.ret, _indices(reply.regs, EPAPR_FIRST_ARG, EPAPR_FIRST_OUT, EPAPR_LAST_ARG,
                                                     "ePAPR"))  # fmt: skip
    else:
        raise TypeError(f"{type(ex).__name__} is not a PowerPC hypercall exit")
