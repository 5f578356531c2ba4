"""hvconf.contract: what the compiler and the runtime agree on, written once.

- plan.py: plan.json, the compiler's output and the runtime's input: its format
  number, the step record, the reader and the writer;
- arches.py: one record per architecture: its family, `_IOC` encoding, struct
  layout, byte order, uname machine and KVM_CREATE_VM types;
- host_facts.py: the format number of host facts (the runtime's probe writes
  them, hvconf/model/host.py reads them).

Standard library and hvconf/record.py only, cheap to import: a launch reads
it, and it ships with the runtime to hosts that have nothing but cffi
(tests/test_layering.py). Data flow: docs/runtime.md.
"""
