"""Host facts: what one host's KVM offers (format 1, docs/host.md), as a pydantic model.

Loads and validates the JSON that `hvconf host --format json` writes (or a
hand-made file for a host CI cannot reach), answers the questions the host
checks ask (a cap's value for a VM type, the vCPU limit), and prints facts
as JSON or text. It never probes a host: that is hvconf/kvm/probe.py's job,
reached only through the CLI. Tests: tests/test_host.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator
from pydantic import model_validator

from hvconf import abi
from hvconf.contract import HOST_FACTS_FORMAT

# api.rst §4.4 (KVM_CREATE_VCPU): without KVM_CAP_NR_VCPUS, assume 4 vCPUs at most.
FALLBACK_MAX_VCPUS = 4
# Keys written only when they have a value, so a probe file stays byte-identical run to run.
_OPTIONAL_KEYS = ("note", "probed_at", "memory_bytes", "ppc_mmu")

Count = Annotated[int, Field(strict=True, ge=0)]


class HostFactsError(Exception):
    """A host-facts file cannot be read or is not valid; the message is one line."""


class _Facts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VmType(_Facts):
    """One KVM_CREATE_VM type the probe tried: `error` is the errno name when it failed."""

    type: Count
    name: str
    created: StrictBool
    error: str | None = None


class CapFacts(_Facts):
    """KVM_CHECK_EXTENSION of one cap: on the system fd, and on a VM fd per created VM type."""

    name: str = Field(pattern=r"^KVM_CAP_[A-Z0-9_]+$")
    number: Count
    system: StrictInt
    vm: dict[int, StrictInt] = {}


class PvFeatures(_Facts):
    """CPUID 0x40000001 from KVM_GET_SUPPORTED_CPUID: eax = KVM_FEATURE_* bits, edx = KVM_HINTS_*.

    `names` is derived from the bits; a file may omit it, and if it gives it, it must agree.
    """

    eax: StrictInt = Field(ge=0, le=0xFFFF_FFFF)
    edx: StrictInt = Field(ge=0, le=0xFFFF_FFFF)
    names: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _names_follow_bits(self) -> PvFeatures:
        derived = feature_names(self.eax, "eax") + feature_names(self.edx, "edx")
        if self.names is not None and tuple(self.names) != derived:
            raise ValueError(f"names {list(self.names)} do not match eax {self.eax:#010x} / edx {self.edx:#010x}, "
                             f"which name {list(derived)}; fix the bits, or delete `names` to derive them")
        object.__setattr__(self, "names", derived)
        return self

    def supports(self, name: str) -> bool:
        feature = abi.kvm_feature(name)
        return bool((self.eax if feature.register == "eax" else self.edx) & feature.mask)


class PpcMmu(_Facts):
    """Book3S HV: the guest MMUs this host runs. `hash` comes from trying KVM_PPC_ALLOCATE_HTAB
    on a scratch VM (a nested KVM-HV reports KVM_CAP_PPC_ALLOC_HTAB yet refuses it)."""

    radix: StrictBool
    hash: StrictBool
    hash_probe: str


class HostFacts(_Facts):
    """One host. `machine` is `uname -m` (what a plan's requires.host_arch names), `arch`
    the hvconf.abi arch whose caps were probed (None when hvconf has none for it)."""

    format: StrictInt
    note: str | None = None  # where hand-made facts come from (written second, so readers see it first)
    machine: str = Field(min_length=1)
    arch: str | None
    kernel_release: str
    api_version: StrictInt
    vcpu_mmap_size: Count
    memory_bytes: Count | None = None  # physical memory (absent in facts from before it was probed)
    vm_types: tuple[VmType, ...]
    caps: tuple[CapFacts, ...]
    proposed: dict[str, StrictInt] = {}  # numbers a patched kernel gives the unmerged ePAPR proposal
    pv_features: PvFeatures | None = None  # x86 only
    ppc_mmu: PpcMmu | None = None  # Book3S only (absent in facts from before it was probed)
    probed_at: str | None = None  # only with `hvconf host --timestamp`

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if value != HOST_FACTS_FORMAT:
            raise ValueError(f"format {value} is not supported (this hvconf reads host facts format {HOST_FACTS_FORMAT})")
        return value

    @field_validator("proposed")
    @classmethod
    def _proposed_names(cls, value: dict[str, int]) -> dict[str, int]:
        kinds = {item.name: item.kind for item in abi.proposed().items}
        for name in value:
            if kinds.get(name) not in ("cap", "exit", "hcall"):
                hint = abi.names_close_to("proposed", name)
                raise ValueError(f"{name!r} is not a numbered name of the unmerged ePAPR proposal"
                                 + (f"; did you mean {' or '.join(hint)}?" if hint else ""))
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HostFacts:
        types = [t.type for t in self.vm_types]
        if len(set(types)) != len(types):
            raise ValueError("vm_types: a VM type is listed twice")
        created = {t.type for t in self.vm_types if t.created}
        seen: set[str] = set()
        for cap in self.caps:
            if cap.name in seen:
                raise ValueError(f"caps: {cap.name} is listed twice")
            seen.add(cap.name)
            want = self.proposed.get(cap.name) if cap.name in _proposed_caps() else _linux_number(cap.name)
            if cap.name in _proposed_caps() and want is None:
                raise ValueError(f"caps: {cap.name} is part of the unmerged proposal; give its number in `proposed`")
            if want is not None and cap.number != want:
                raise ValueError(f"caps: {cap.name} is cap {want}, not {cap.number}")
            stray = sorted(set(cap.vm) - created)
            if stray:
                raise ValueError(f"caps: {cap.name}: vm values for VM type {stray[0]}, which vm_types does not "
                                 "list as created")
        return self

    @cached_property
    def name2cap(self) -> Mapping[str, CapFacts]:
        return {c.name: c for c in self.caps}

    def vm_type(self, vm_type: int) -> VmType | None:
        return next((t for t in self.vm_types if t.type == vm_type), None)

    def cap_value(self, name: str, vm_type: int) -> tuple[int, str] | None:
        """The cap's KVM_CHECK_EXTENSION value as a VM of `vm_type` sees it, and on which fd;
        the system fd's value when no VM fd of that type was probed; None if not listed."""
        cap = self.name2cap.get(name)
        if cap is None:
            return None
        if vm_type in cap.vm:
            row = self.vm_type(vm_type)
            return cap.vm[vm_type], f"a VM fd of type {vm_type}" + (f" ({row.name})" if row else "")
        return cap.system, "the system fd"

    def max_vcpus(self, vm_type: int) -> tuple[int, str] | None:
        """The most vCPUs a VM of `vm_type` may have and which cap says so (api.rst §4.4);
        None when the facts list neither KVM_CAP_MAX_VCPUS nor KVM_CAP_NR_VCPUS."""
        listed = False
        for name in ("KVM_CAP_MAX_VCPUS", "KVM_CAP_NR_VCPUS"):
            value = self.cap_value(name, vm_type)
            if value is not None:
                listed = True
                if value[0] > 0:
                    return value[0], name
        return (FALLBACK_MAX_VCPUS, "api.rst's default without KVM_CAP_NR_VCPUS") if listed else None


def _proposed_caps() -> set[str]:
    return {item.name for item in abi.proposed().items if item.kind == "cap"}


def _linux_number(name: str) -> int | None:
    # Names hvconf.abi does not know (newer kernels, other tools) are kept as given.
    row = abi.caps().get(name)
    return row.number if row is not None else None


def feature_names(bits: int, register: str) -> tuple[str, ...]:
    """KVM_FEATURE_* (eax) or KVM_HINTS_* (edx) names of the set bits hvconf.abi knows, by bit."""
    from hvconf.abi import hcalls

    rows = [f for f in hcalls.kvm_features().values() if f.register == register and bits & f.mask]
    return tuple(f.name for f in sorted(rows, key=lambda f: f.bit))


# ---- loading and printing --------------------------------------------------


def host_facts(data: Any, source: str) -> HostFacts:
    """Validated facts from decoded JSON; HostFactsError names `source` and the first bad key."""
    try:
        return HostFacts.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = _loc(first["loc"], data)
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        message = first["msg"].removeprefix("Value error, ")
        raise HostFactsError(f"{source}: {where + ': ' if where else ''}{message}{more}") from None


def load_host_facts(path: Path) -> HostFacts:
    """The facts in `path`; HostFactsError (one line) when it cannot be read or is not valid."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise HostFactsError(f"cannot read host facts {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise HostFactsError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise HostFactsError(f"{path}:{err.lineno}:{err.colno}: not valid JSON: {err.msg}") from None
    return host_facts(data, str(path))


def _loc(loc: tuple[int | str, ...], data: Any) -> str:
    """A pydantic location as a key path, list rows shown by name: caps[KVM_CAP_HLT].system."""
    parts, node = [], data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list):
            node = node[part] if part < len(node) else None
            label = node.get("name") if isinstance(node, dict) else None
            parts.append(f"[{label or part}]")
        else:
            node = node.get(str(part)) if isinstance(node, dict) else None
            parts.append(f".{part}")
    return "".join(parts).lstrip(".")


def to_json_data(facts: HostFacts) -> dict[str, Any]:
    data = facts.model_dump(mode="json")
    for key in _OPTIONAL_KEYS:
        if data[key] is None:
            del data[key]
    return data


def dumps(facts: HostFacts) -> str:
    return json.dumps(to_json_data(facts), indent=2) + "\n"


def to_text(facts: HostFacts) -> str:
    """The facts for people: a summary, then one line per cap (`*` where a VM fd differs)."""
    arch = f"hvconf arch {facts.arch}" if facts.arch else "no hvconf arch"
    lines = [f"host {facts.machine} ({arch}), Linux {facts.kernel_release}",
             f"KVM API version {facts.api_version}, vCPU mmap size {facts.vcpu_mmap_size} bytes"]
    if facts.memory_bytes is not None:
        lines.append(f"memory {facts.memory_bytes:#x} bytes ({facts.memory_bytes >> 20} MiB)")
    for t in facts.vm_types:
        state = "created" if t.created else f"cannot be created ({t.error or 'failed'})"
        limit = facts.max_vcpus(t.type) if t.created else None
        vcpus = f", up to {limit[0]} vCPUs ({limit[1]})" if limit else ""
        lines.append(f"VM type {t.type} {t.name}: {state}{vcpus}")
    if facts.proposed:
        lines.append("unmerged ePAPR proposal numbers: " + ", ".join(f"{k}={v}" for k, v in facts.proposed.items()))
    pv = facts.pv_features
    if pv is not None:
        lines.append(f"PV features (CPUID 0x40000001 from KVM_GET_SUPPORTED_CPUID): eax {pv.eax:#010x}, "
                     f"edx {pv.edx:#010x}")
        lines.append("  " + (" ".join(_bit_names(pv.eax, "eax") + _bit_names(pv.edx, "edx")) or "none"))
    if facts.ppc_mmu is not None:
        mmus = [m for m, ok in (("radix", facts.ppc_mmu.radix), ("hash", facts.ppc_mmu.hash)) if ok]
        lines.append(f"guest MMUs: {', '.join(mmus) or 'none'} ({facts.ppc_mmu.hash_probe})")
    types = [t.type for t in facts.vm_types if t.created]
    header = ["nr", "capability", "system", *(f"vm {t}" for t in types)]
    rows = [[str(c.number), c.name, str(c.system), *(str(c.vm[t]) if t in c.vm else "-" for t in types)]
            + (["*"] if any(v != c.system for v in c.vm.values()) else []) for c in facts.caps]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines.append("capabilities (KVM_CHECK_EXTENSION; * where a VM fd differs from the system fd):")
    for row in [header, *rows]:
        cells = [row[0].rjust(widths[0]), row[1].ljust(widths[1]),
                 *(cell.rjust(width) for cell, width in zip(row[2:len(header)], widths[2:]))]
        lines.append("  " + "  ".join(cells + row[len(header):]).rstrip())
    return "\n".join(lines) + "\n"


def _bit_names(bits: int, register: str) -> list[str]:
    """Set bits by name (prefix dropped), unnamed ones as `bit N` so nothing is hidden."""
    named = {abi.kvm_feature(n).bit: n.removeprefix("KVM_FEATURE_").removeprefix("KVM_") for n in
             feature_names(bits, register)}
    unnamed = "bit" if register == "eax" else "hints bit"
    return [named.get(bit, f"{unnamed} {bit}") for bit in range(32) if bits >> bit & 1]
