"""The typed intermediate representation of a VM definition (pydantic).

pydantic validates shape (types, ranges, enums, no unknown fields); relations
between objects and KVM's rules are hvconf/check's job. Every object the user
wrote keeps its span (excluded from serialisation) so later stages can point
at the line that caused a finding. Tested through tests/test_model.py.
"""

# No `from __future__ import annotations`: pydantic would evaluate every field annotation
# string when a model class is made: 5 ms of a cold `hvconf check`, with target_toml.py's rows.

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from hvconf.diagnostics import Span

U64_MAX = 0xFFFF_FFFF_FFFF_FFFF


class IrModel(BaseModel):
    # defer_build: a model's validator is built when it first validates. `hvconf check` makes
    # plainly valid objects without one (hvconf/model/validate.py `new`), and most files have
    # nothing else.
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True, defer_build=True)

    span: Span | None = Field(default=None, exclude=True, repr=False)


class HcallOp(IrModel):
    """`enable`/`disable`/`exit` of one hypercall, by name or raw number."""

    action: Literal["enable", "disable", "exit"]
    ref: Union[str, int]


class Hcalls(IrModel):
    preset: str | None = None
    preset_span: Span | None = Field(default=None, exclude=True, repr=False)
    ops: tuple[HcallOp, ...] = ()
    enforce: bool = False
    enforce_span: Span | None = Field(default=None, exclude=True, repr=False)


class RtasToken(IrModel):
    name: str = Field(min_length=1, max_length=119)  # kvm_rtas_token_args.name is char[120]
    token: int = Field(ge=1, le=0xFFFF_FFFF)


class CapArg(IrModel):
    name: str
    value: Union[bool, int, str, tuple[Union[int, str], ...]]


class CapUse(IrModel):
    """`cap NAME [on vm | on vcpus | on vcpu N] [{ args }]`; scope None means the cap's own."""

    name: str
    scope: Literal["vm", "vcpus", "vcpu"] | None = None
    vcpu: int | None = Field(default=None, ge=0, le=0xFFFF_FFFF)
    args: tuple[CapArg, ...] = ()

    @property
    def arg_dict(self) -> dict[str, object]:
        return {a.name: a.value for a in self.args}


class Tce(IrModel):
    """A TCE (DMA translation) table: KVM_CREATE_SPAPR_TCE(_64) plus `ibm,my-dma-window`."""

    name: str
    liobn: int = Field(ge=0, le=U64_MAX)
    window: int = Field(gt=0, le=U64_MAX)
    page: int = Field(default=4096, gt=0, le=U64_MAX)
    offset: int = Field(default=0, ge=0, le=U64_MAX)


class Hypervisor(IrModel):
    """The ePAPR `/hypervisor` node."""

    idle: bool = False
    reset: bool = False
    shutdown: bool = False
    compatible: str = "linux,kvm"
    hcall_instructions: tuple[int, ...] | None = None


class PvFeature(IrModel):
    name: str


class Guest(IrModel):
    """A guest image: assembled from .S at build time, or a flat binary."""

    path: str = Field(min_length=1)
    mode: Literal["real", "prot32", "long64"] = "real"
    at: int | None = Field(default=None, ge=0, le=U64_MAX)


class Vm(IrModel):
    """One VM definition after `extends` is resolved and defaults are filled in."""

    name: str
    abstract: bool = False
    arch: str | None = None
    flavour: str | None = None
    target: str | None = None
    memory: int | None = Field(default=None, gt=0, le=U64_MAX)
    vcpus: int = Field(default=1, ge=1, le=0xFFFF_FFFF)
    threads: int = Field(default=1, ge=1, le=0xFFFF_FFFF)
    htab: Union[int, Literal["auto"], None] = None
    rma: Union[Literal["none"], int, None] = None
    mmu: Literal["radix", "hash"] | None = None
    hcalls: Hcalls = Hcalls.model_construct()  # what Hcalls() holds, without building its validator
    rtas: tuple[RtasToken, ...] = ()
    caps: tuple[CapUse, ...] = ()
    tces: tuple[Tce, ...] = ()
    hypervisor: Hypervisor | None = None
    pv_features: tuple[PvFeature, ...] = ()
    irqchip: str | None = None  # modes are target data (targets/*/target.toml)
    pit: str | None = None
    console: str | None = None
    kernel: str | None = None
    # An ELF vmlinux is loaded by its PT_LOAD segments; a raw image only when written `kernel "F" flat`.
    kernel_format: Literal["elf", "flat"] = "elf"
    initrd: str | None = None  # an initial ramdisk the kernel is given (x86: boot_params ramdisk_image)
    cmdline: str | None = None
    guest: Guest | None = None
    # Span of each setting the user wrote, by field name (for diagnostics on scalars).
    spans: dict[str, Span] = Field(default_factory=dict, exclude=True, repr=False)

    def span_of(self, field: str) -> Span | None:
        return self.spans.get(field, self.span)


def complete() -> None:
    """Build every IR model's validator and serializer now rather than at first use (defer_build):
    JSON Schema encodes the default `hcalls` through the Hcalls class's own serializer."""
    for model in (HcallOp, Hcalls, RtasToken, CapArg, CapUse, Tce, Hypervisor, PvFeature, Guest, Vm):
        model.model_rebuild()
