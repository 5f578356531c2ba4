"""The emulated POWER9 test host: a real ppc64le KVM-HV under qemu-system-ppc64 (TCG).

power.py keeps tests/ppc's names and CLI on top of the shared harness in tests/hosts
(emulated.py, with the recipe in tests/hosts/ppc.py). See tests/hosts/README.md;
tests: tests/ppc/test_power_host.py.
"""
