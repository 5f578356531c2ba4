"""hvconf.kvm.x86: the x86 family (x86_64) of the runtime, kvmtool's x86/.

The same parts as every family (hvconf/kvm/families.py, docs/runtime.md):
exits.py, the exit hook (KVM_EXIT_HYPERCALL) and where a stopped vCPU was;
steps.py, x86's plan steps (TSS, irqchip, PIT, CPUID, start modes,
registers); devices.py, the platform's port writes (power-off, reset, the
exception stubs) and the 16550 console; hypercalls.py, KVM_HC_* answered
in the launcher; host.py, its host facts. Its own: modes.py, the start
modes' segment state and tables; serial.py, the 16550. It imports the
generic layer (hvconf/kvm/*.py) and the bottom one, never another family.
"""
