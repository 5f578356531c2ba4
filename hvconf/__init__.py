"""hvconf: a declarative guest-configuration compiler for KVM.

The compiler (syntax -> model -> check -> platforms -> emit) is pure: text in,
artifacts and a report out. The runtime that touches /dev/kvm lives in
hvconf.kvm and is never imported by the compiler (tests/test_layering.py).
"""

__version__ = "0.1.0"
