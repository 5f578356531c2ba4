"""hvconf.kvm.powerpc: the PowerPC family (ppc64, ppc64le, ppc-e500) of the runtime, kvmtool's powerpc/.

The same parts as every family (hvconf/kvm/families.py, docs/runtime.md):
exits.py, the exit hook (sPAPR and ePAPR hypercalls), LPCR[ILE] before each
KVM_RUN after H_SET_MODE, and where a stopped vCPU was; steps.py, the HPT,
radix MMU, TCE tables, RTAS tokens, e500's shared TLB and hcall words,
registers; devices.py, the hypercall consoles and handlers, the e500 spin
table and the host's cpu clocks in the DTB; hypercalls.py, sPAPR's and
ePAPR's handlers and register conventions; host.py, the hash-MMU probe.
Its own: rtas.py, consoles.py, sw_tlb.py, spin_table.py, host_cells.py.
It imports the generic layer (hvconf/kvm/*.py) and the bottom one, never
another family.
"""
