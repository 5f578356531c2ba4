"""The PowerPC exit hook: the exits the generic loop leaves to PowerPC (kvmtool's powerpc kvm_cpu__handle_exit).

`handle_exit(loop, exit)` hands sPAPR (KVM_EXIT_PAPR_HCALL) and ePAPR
(the proposed KVM_EXIT_EPAPR_HCALL) hypercalls to the plan's handlers
(hypercalls.py) and writes their reply back; an RTAS power-off ends the
machine HALTED, a reboot GUEST_SHUTDOWN marked REBOOT (run.py restarts it on request); any other exit is the loop's
`unknown`. `before_run(loop)`: after H_SET_MODE(LE) each vCPU gets LPCR[ILE]
before its next KVM_RUN (KVM_SET_ONE_REG), and the vCPU that made the call
kicks the others out of KVM_RUN so that they do too (QEMU: run_on_cpu).
`stopped_at(loop)` is the vCPU's pc. Tests: tests/kvm/test_buffers_papr.py,
tests/kvm/test_buffers_epapr.py, tests/ppc/ (on the POWER host).
"""

from __future__ import annotations

from hvconf.kvm.ioctls.errors import KvmError
from hvconf.kvm.ioctls.kvm_run import EpaprHcall, PaprHcall
from hvconf.kvm.status import REBOOT, Status

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from hvconf.kvm.vcpu_loop import ExitLoop, Outcome


def _signed(ret: int) -> int:
    """An hcall status as the guest reads r3: H_FUNCTION is -2, not 2**64 - 2."""
    return ret - (1 << 64) if ret >= 1 << 63 else ret


def _hcall_name(ex: PaprHcall | EpaprHcall) -> str:
    if isinstance(ex, PaprHcall):
        import hvconf.abi

        try:
            return f"{hvconf.abi.papr_hcall(ex.nr).name} ({ex.nr:#x})"
        except hvconf.abi.AbiError:
            pass
    return f"{ex.nr:#x}"


def _hcall(loop: ExitLoop, ex: PaprHcall | EpaprHcall) -> Outcome:
    """A sPAPR or ePAPR hypercall the kernel left to userspace: the plan's handler answers it."""
    hcalls = loop.hcalls
    if hcalls is None:
        return Status.KVM_INTERNAL, f"{type(ex).__name__} {ex.nr:#x}, but the plan has no hypercall handlers"
    from hvconf.kvm.powerpc.hypercalls import complete
    from hvconf.kvm.reply import Outcome as HcallOutcome

    before = getattr(hcalls, "interrupts_little_endian", None)
    reply = hcalls.handle(ex)
    complete(loop.vcpu._view(), ex, reply)
    if getattr(hcalls, "interrupts_little_endian", None) != before:
        loop.kick_all()  # a vCPU that never exits must still get LPCR[ILE] (QEMU: run_on_cpu)
    loop.tracer.note(f"{loop.label}: hcall {_hcall_name(ex)} reached the launcher -> {_signed(reply.ret)}"
                     + (f" ({reply.note})" if reply.note else ""))  # fmt: skip
    if reply.outcome == HcallOutcome.POWER_OFF:
        return Status.HALTED, f"guest powered off ({reply.note})"
    if reply.outcome == HcallOutcome.RESET:
        return Status.GUEST_SHUTDOWN, f"guest asked for a reboot ({reply.note})", REBOOT
    return None


EXITS: dict[type, Callable[[ExitLoop, Any], Outcome]] = {PaprHcall: _hcall, EpaprHcall: _hcall}


def handle_exit(loop: ExitLoop, ex: Any) -> Outcome:
    """An exit the generic loop does not answer itself."""
    return EXITS.get(type(ex), type(loop).unknown)(loop, ex)


def before_run(loop: ExitLoop) -> Callable[[], None] | None:
    """What to do before every KVM_RUN of this vCPU: set LPCR[ILE] as H_SET_MODE last asked (sPAPR)."""
    hcalls = loop.hcalls
    if hcalls is None or not hasattr(hcalls, "interrupts_little_endian"):
        return None
    applied: list[bool | None] = [None]  # LPCR[ILE] as this vCPU last set it

    def apply_ile() -> None:
        little = hcalls.interrupts_little_endian
        if little != applied[0]:
            _set_ile(loop, little)
            applied[0] = little

    return apply_ile


def _set_ile(loop: ExitLoop, little: bool | None) -> None:
    from hvconf.abi.tables import raw

    one_reg = raw("papr")["one_reg"]
    lpcr = loop.vcpu.get_one_reg(one_reg["KVM_REG_PPC_LPCR_64"])
    want = lpcr | one_reg["LPCR_ILE"] if little else lpcr & ~one_reg["LPCR_ILE"]
    if want != lpcr:
        loop.vcpu.set_one_reg(one_reg["KVM_REG_PPC_LPCR_64"], want)
        loop.tracer.note(f"{loop.label}: LPCR {lpcr:#x} -> {want:#x} (interrupts "
                         f"{'little' if little else 'big'}-endian, after H_SET_MODE)")  # fmt: skip


def stopped_at(loop: ExitLoop) -> str | None:
    """The vCPU's pc; None when its registers cannot be read."""
    try:
        return f"pc {loop.vcpu.regs.pc:#x}"
    except KvmError:
        return None
