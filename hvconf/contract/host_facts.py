"""Host facts (`hvconf host --format json`, docs/host.md): the format number, written by the runtime's
probe (hvconf/kvm/probe.py) and checked by the compiler's reader (hvconf/model/host.py), and the keys an arch
family's probe fills in (hvconf/kvm/<family>/host.py), which are null on every other host.
"""

FORMAT = 1
FAMILY_KEYS = ("pv_features", "ppc_mmu")  # in this order, after "proposed"
