"""hvconf.kvm.s390: the s390 family (s390x) of the runtime, kvmtool's would-be s390/.

The same parts as every family (hvconf/kvm/families.py, docs/runtime.md),
each still empty or nearly: s390x plans are compiled, checked and dry-run,
never run (no s390 host here, and s390 cannot be emulated with KVM:
targets/s390x/target.toml), so there is no exit, step, device or hypercall
served here yet. The bottom layer has what a first one would need (the
s390 kvm_run layout, KVM_EXIT_S390_SIEIC decoding, KVM_S390_SET_INITIAL_PSW).
"""
