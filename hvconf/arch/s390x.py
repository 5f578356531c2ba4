"""s390x plans: VM, VM caps, RAM, per vCPU create + caps + initial PSW, KVM_RUN.

s390 boots from an IPL'd image (SCLP/CCW), not a device tree. hvconf
can plan and lint s390 guests; its runtime cannot run them (no s390 host
here), and the launcher says so before touching KVM.
Tested by tests/test_plan.py and the golden tests.
"""

from __future__ import annotations

from hvconf.arch import common
from hvconf.arch.base import BuildContext
from hvconf.emit.plan import Plan

PSW_MASK_64 = 0x0000_0001_8000_0000  # EA + BA: 64-bit addressing
IPL_ENTRY = 0x1_0000  # where a Linux image expects to start after IPL


def device_tree(ctx: BuildContext) -> None:
    return None


def plan(ctx: BuildContext) -> Plan:
    vm = ctx.vm
    p = common.new_plan(ctx, host_arch="s390x")
    common.create_vm(p, ctx)
    common.user_caps(p, ctx, vcpu=None)
    common.memory(p, ctx)
    common.kernel_image(p, ctx, load=IPL_ENTRY)
    for index in range(vm.vcpus):
        fd = common.vcpu_fd(index)
        common.create_vcpu(p, ctx, index)
        common.user_caps(p, ctx, vcpu=index)
        p.add(fd, "KVM_S390_SET_INITIAL_PSW", {"mask": PSW_MASK_64, "addr": IPL_ENTRY}, vm.span_of("kernel"))
    common.run_all(p, ctx)
    return p
