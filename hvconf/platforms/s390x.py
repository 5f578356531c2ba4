"""s390x plans: VM, VM caps, RAM, per vCPU create + caps + start state, KVM_RUN of the IPL vCPU.

s390 boots from an IPL'd image (SCLP/CCW), not a device tree. Only vCPU 0, the
IPL CPU, starts: it gets the initial PSW while it is still stopped
(KVM_S390_SET_INITIAL_PSW answers EBUSY otherwise) and is then made operating.
Every other vCPU is put in the stopped state and stays there until the guest
starts it with SIGP START or RESTART, which KVM hands to userspace
(arch/s390/kvm/sigp.c handle_sigp_dst), as QEMU's non-IPL CPUs wait stopped
(target/s390x: s390_cpu_set_state). The first KVM_SET_MP_STATE gives userspace
the stopped/operating state of every vCPU (kvm-s390.c
kvm_s390_set_user_cpu_state_ctrl), so a stopped vCPU has no KVM_RUN step: the
plan lists them under launcher.s390.stopped_until_sigp.

hvconf can plan and lint s390 guests; its runtime cannot run them (no s390
host here), and the launcher says so before touching KVM.
Tested by tests/test_plan.py and the golden tests.
"""

from __future__ import annotations

from hvconf.abi.tables import raw
from hvconf.platforms import common
from hvconf.platforms.base import BuildContext
from hvconf.emit.plan import PlanBuilder

PSW_MASK_64 = 0x0000_0001_8000_0000  # EA + BA: 64-bit addressing
IPL_ENTRY = 0x1_0000  # where a Linux image expects to start after IPL
IPL_VCPU = 0


def device_tree(ctx: BuildContext) -> None:
    return None


def _mp_state(plan: PlanBuilder, ctx: BuildContext, index: int, state: str) -> None:
    span = ctx.vm.span_of("vcpus")
    plan.add(common.vcpu_fd(index), "KVM_SET_MP_STATE", {"mp_state": raw("s390")["mp_state"][state], "state": state},
             span)
    plan.require("KVM_CAP_MP_STATE", span)


def plan(ctx: BuildContext) -> PlanBuilder:
    vm = ctx.vm
    p = common.new_plan(ctx)
    common.create_vm(p, ctx)
    common.user_caps(p, ctx, vcpu=None)
    common.memory(p, ctx)
    common.kernel_image(p, ctx, load=IPL_ENTRY)
    for index in range(vm.vcpus):
        common.create_vcpu(p, ctx, index)
        common.user_caps(p, ctx, vcpu=index)
        if index == IPL_VCPU:
            p.add(common.vcpu_fd(index), "KVM_S390_SET_INITIAL_PSW", {"mask": PSW_MASK_64, "addr": IPL_ENTRY},
                  vm.span_of("kernel"))
            _mp_state(p, ctx, index, "KVM_MP_STATE_OPERATING")
        else:
            _mp_state(p, ctx, index, "KVM_MP_STATE_STOPPED")
    p.add(common.vcpu_fd(IPL_VCPU), "KVM_RUN", {}, vm.span_of("vcpus"))
    p.launcher = {"s390": {"stopped_until_sigp": [i for i in range(vm.vcpus) if i != IPL_VCPU]}}
    return p
