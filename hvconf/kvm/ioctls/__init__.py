"""hvconf.kvm.ioctls: the bottom layer of the runtime, the KVM API as Python (rust-vmm's kvm-ioctls).

One class per fd kind, one method per ioctl named after it (system.py Kvm,
vm.py Vm, vcpu.py Vcpu, on fd.py's KvmFd); errors.py, the one errno
boundary; kvm_run.py, the mmap'd struct kvm_run: typed exits decoded from
it and the answers written back; memory.py, the anonymous mmaps behind
guest memory slots; ffi.py, the host's cffi declarations and libc;
cdefs/, the declarations of every layout (generated, out-of-line cffi);
numbers.py, the uapi numbers a launch needs (generated from hvconf.abi).

It runs no plan and decides nothing: the layers above (hvconf/kvm/*.py,
then hvconf/kvm/<family>/) call it. It imports nothing of them, only
hvconf.contract, hvconf.record and, for what numbers.py lacks, hvconf.abi
(tests/test_layering.py). The layers: docs/runtime.md.
"""
