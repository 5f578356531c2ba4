"""hvconf.kvm: the runtime that executes plans against the host's /dev/kvm, in three layers.

- bottom, hvconf/kvm/ioctls/ (rust-vmm's kvm-ioctls): fd wrappers with one
  method per ioctl, cffi declarations, the errno boundary, kvm_run exit
  decoding, mmap'd memory, the generated uapi numbers. It imports nothing
  above it.
- generic, hvconf/kvm/*.py (kvmtool's kvm.c, kvm-cpu.c, term.c): the launcher
  entry point (launch.py), the plan executor (run.py) and its step table
  (steps.py), vCPU threads and their exit loop, watchdog, ending and status,
  console output, images and ELF, trace, options, dry run, host probe. It
  knows no architecture: what differs per arch comes from the plan's family
  through the registry (families.py).
- families, hvconf/kvm/x86/, powerpc/, s390/ (kvmtool's x86/, powerpc/):
  the same file names in each: exits.py (the exit hook the generic loop
  calls, kvmtool's kvm_cpu__handle_exit), steps.py, devices.py,
  hypercalls.py, host.py. A family imports the layers below it, never
  another family.

The plan itself is hvconf/contract.py, which the compiler writes with.
The only package that imports cffi or opens /dev/kvm; the compiler never
imports it (tests/test_layering.py enforces all of this). Importing the
package itself is cheap: cffi loads only when a module that needs it is
imported. The data flow: docs/runtime.md. Tests: tests/kvm/.
"""
