"""hvconf.kvm: the runtime that executes plans against the host's /dev/kvm.

The only package that imports cffi or opens /dev/kvm; the compiler never
imports it. One class per fd kind (Kvm, Vm, Vcpu), typed exits, a 16550
console, the plan executor (run.py), the dry-run formatter and the
launcher entry point (launch.py). Importing the package itself is cheap:
cffi loads only when a module that needs it is imported. Tests: tests/kvm/.
"""
