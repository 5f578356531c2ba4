"""s390 hypercalls that reach the launcher (DIAG 0x500 and friends, as KVM_EXIT_S390_SIEIC): none served
yet; exits.py leaves them unhandled. Tests: tests/test_layering.py.
"""
