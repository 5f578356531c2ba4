"""The emulated test hosts: a real KVM in a Debian kernel booted under QEMU's TCG.

emulated.py is the harness (packages, cache, initramfs, boot, console protocol, CLI),
cpio.py the initramfs writer, init the host's PID 1; ppc.py and x86.py are the recipes.
See README.md here; tests: tests/hosts/test_emulated.py.
"""
