"""The emulated POWER9 test host: a real ppc64le KVM-HV under qemu-system-ppc64 (TCG).

power.py is the library and CLI, cpio.py the initramfs writer, init the guest's PID 1.
See README.md here; tests: tests/ppc/test_power_host.py.
"""
