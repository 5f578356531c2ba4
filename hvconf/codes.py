"""Every diagnostic code hvconf emits, declared once: name, stage and default severity.

This is the one list (as ruff's codes.rs is): the checks, the pipeline stages that
emit codes of their own (parser, loader, paths, lowering, build), suppressions,
`hvconf explain`, shell completion and the output formats all read it. A code's
texts live beside the code that decides it: a Check (hvconf/check) holds its summary,
why and help; hvconf/lint/explain.toml holds them for the stages' codes, and the
examples of both. tests/test_codes.py fails on a code emitted anywhere in hvconf/
that is not declared here, on a declared code without an explain page or a
tests/invalid sample, and on a Check whose severity or stage disagrees.

The order is the pipeline's: it is the order of docs/diagnostics.md and of SARIF's
ruleIndex. Plain tuples, not a class per code: this module is imported by every
`hvconf check` and costs one dict.
"""

from __future__ import annotations

import difflib
from types import MappingProxyType
from typing import Mapping

from hvconf.diagnostics import Severity
from hvconf.record import Record

# Pipeline order; only the build stage is out of `hvconf check`'s reach.
STAGES: Mapping[str, str] = MappingProxyType({
    "config": "reading the project configuration, hvconf.toml or [tool.hvconf] in pyproject.toml "
              "(hvconf/lint/settings.py); printed on stderr, exit status 2",
    "parse": "reading the text (hvconf/syntax)",
    "load": "following includes (hvconf/syntax/loader.py)",
    "paths": "where the files a definition names may be read from: includes, `guest`, `kernel` and what a guest "
             "source includes (hvconf/syntax/paths.py, hvconf/model/inputs.py)",
    "lower": "resolving `extends` and typing values (hvconf/model)",
    "check": "the KVM rules (hvconf/check)",
    "host": "holding a VM against one host's facts (hvconf/check/host.py); reported only with check --host "
            "or --host-facts FILE",
    "build": "writing the artifacts (hvconf/platforms, hvconf/emit); reported by build, plan, dts and run, not by check",
})


class Code(Record):
    """One diagnostic code: `severity` is the default (a Check may lower one finding's)."""

    __slots__ = ("name", "stage", "severity")
    name: str
    stage: str
    severity: Severity


E, W = Severity.ERROR, Severity.WARNING
_ROWS: tuple[tuple[str, str, Severity], ...] = (
    # ---- config
    ('invalid-config',              'config', E),
    # ---- parse
    ('syntax-error',                'parse', E),
    ('unknown-keyword',             'parse', E),
    ('bad-escape',                  'parse', E),
    ('number-too-large',            'parse', E),
    ('invalid-utf8',                'parse', E),
    # ---- load
    ('include-not-found',           'load', E),
    ('include-not-a-file',          'load', E),
    ('include-too-large',           'load', E),
    ('include-unreadable',          'load', E),
    ('include-cycle',               'load', E),
    ('include-not-hv',              'load', E),
    ('unsupported-format',          'load', E),
    ('duplicate-vm',                'load', E),
    # ---- paths
    ('path-outside-project',        'paths', E),
    ('path-not-a-file',             'paths', E),
    ('path-unreadable',             'paths', E),
    ('guest-not-found',             'paths', E),
    # ---- lower
    ('unknown-base',                'lower', E),
    ('extends-cycle',               'lower', E),
    ('extends-too-deep',            'lower', E),
    ('duplicate-setting',           'lower', W),
    ('duplicate-key',               'lower', E),
    ('invalid-value',               'lower', E),
    ('unknown-key',                 'lower', E),
    ('missing-setting',             'lower', E),
    ('unknown-arch',                'lower', E),
    ('unknown-flavour',             'lower', E),
    # ---- check
    ('unknown-cap',                 'check', E),
    ('cap-not-offered',             'check', E),
    ('cap-wrong-flavour',           'check', E),
    ('cap-check-only',              'check', E),
    ('cap-managed',                 'check', E),
    ('cap-wrong-fd',                'check', E),
    ('cap-vm-wide',                 'check', W),
    ('cap-no-such-vcpu',            'check', E),
    ('cap-bad-args',                'check', E),
    ('cap-needs-device',            'check', E),
    ('cap-duplicate',               'check', W),
    ('cap-required',                'check', E),
    ('unknown-hcall',               'check', E),
    ('unknown-preset',              'check', E),
    ('hcall-wrong-arch',            'check', E),
    ('hcall-deprecated',            'check', W),
    ('hcall-not-toggleable',        'check', E),
    ('hcall-redundant',             'check', W),
    ('hcall-set-unhandled',         'check', E),
    ('hcall-cannot-exit',           'check', E),
    ('hcall-no-handler',            'check', W),
    ('hcall-needs-cap',             'check', E),
    ('console-unserved',            'check', E),
    ('unknown-pv-feature',          'check', E),
    ('pv-feature-not-advertisable', 'check', E),
    ('pv-feature-missing',          'check', E),
    ('pv-feature-needs-exit',       'check', E),
    ('pv-feature-cleared',          'check', W),
    ('enforce-without-features',    'check', W),
    ('hcall-disable-ineffective',   'check', E),
    ('kick-cpu-single-vcpu',        'check', W),
    ('real-mode-hypercall-segment', 'check', W),
    ('htab-order-range',            'check', E),
    ('htab-wrong-flavour',          'check', E),
    ('htab-radix',                  'check', E),
    ('mmu-radix-needs-hv',          'check', E),
    ('htab-too-small',              'check', W),
    ('htab-too-large',              'check', W),
    ('rma-obsolete',                'check', W),
    ('tce-liobn-duplicate',         'check', E),
    ('tce-liobn-too-large',         'check', E),
    ('tce-page-size',               'check', E),
    ('tce-window-align',            'check', E),
    ('tce-window-overflow',         'check', E),
    ('tce-window-overlap',          'check', E),
    ('tce-phb-shared',              'check', E),
    ('rtas-token-duplicate',        'check', E),
    ('xics-needs-papr',             'check', E),
    ('kernel-needs-irqchip',        'check', W),
    ('linux-pci-unserved',          'check', W),
    ('rtas-token-low',              'check', W),
    ('hypervisor-flag-unserved',    'check', E),
    ('hcall-instructions-length',   'check', E),
    ('abi-unmerged',                'check', W),
    ('memory-too-small',            'check', E),
    ('memory-granularity',          'check', E),
    ('memory-too-large',            'check', E),
    ('vcpus-too-many',              'check', E),
    ('threads-not-power-of-two',    'check', E),
    ('threads-too-many',            'check', E),
    ('vcpus-threads-mismatch',      'check', E),
    ('threads-wrong-flavour',       'check', E),
    ('vsmt-below-threads',          'check', E),
    ('setting-unsupported',         'check', E),
    ('unknown-console',             'check', E),
    ('unknown-mode',                'check', E),
    ('pit-needs-irqchip',           'check', E),
    ('guest-out-of-reach',          'check', E),
    ('guest-format',                'check', E),
    ('guest-and-kernel',            'check', E),
    ('initrd-without-kernel',       'check', E),
    ('cmdline-too-long',            'check', E),
    ('linux-memory-hole',           'check', E),
    ('kernel-flat-unsupported',     'check', E),
    ('linux-too-many-vcpus',        'check', E),
    ('linux-needs-irqchip',         'check', E),
    ('unused-suppression',          'check', W),
    # ---- host
    ('host-wrong-arch',             'host', E),
    ('host-flavour-unavailable',    'host', E),
    ('host-unmerged-abi',           'host', E),
    ('host-missing-cap',            'host', E),
    ('host-memory-too-small',       'host', E),
    ('host-no-hash-guests',         'host', E),
    ('host-too-many-vcpus',         'host', E),
    ('host-pv-feature-unsupported', 'host', E),
    # ---- build
    ('kernel-missing',              'build', W),
    ('initrd-missing',              'build', W),
    ('kernel-not-bootable',         'build', E),
    ('linux-does-not-fit',          'build', E),
    ('guest-build-failed',          'build', E),
    ('dt-unrepresentable',          'build', E),
    ('abi-overrides-invalid',       'build', E),
    ('guest-beyond-memory',         'build', E),
    ('mode-tables-beyond-memory',   'build', E),
    ('guest-overlaps-mode-tables',  'build', E),
    ('guest-overlaps-fdt',          'build', E),
    ('kernel-invalid',              'build', E),
    ('boot-images-overlap',         'build', E),
)

CODES: Mapping[str, Code] = MappingProxyType({name: Code(name, stage, severity) for name, stage, severity in _ROWS})


def known_codes() -> frozenset[str]:
    return frozenset(CODES)


def stage_of(code: str) -> str | None:
    """The pipeline stage that emits `code`, None for an unknown code."""
    found = CODES.get(code)
    return found.stage if found else None


def closest_code(word: str) -> str | None:
    """The known code `word` was probably meant to be, for a did-you-mean."""
    found = difflib.get_close_matches(word, sorted(CODES), n=1, cutoff=0.6)
    return found[0] if found else None


__all__ = ["CODES", "STAGES", "Code", "closest_code", "known_codes", "stage_of"]
