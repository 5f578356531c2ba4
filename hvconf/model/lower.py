"""Lower AST VM declarations into IR: resolve `extends`, merge, type, default.

A VM's statements are read base-first, so a derived VM overrides its base's
settings, adds to its hcall operations, RTAS tokens and caps, and replaces
TCE tables of the same name. Target and flavour come from `arch`/`kvm`
through the target data. Tested by tests/test_model.py.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, cast

from hvconf.diagnostics import Note, Report, Span, close_matches
from hvconf.model import ir
from hvconf.model.validate import build, check_keys, new
from hvconf.syntax import ast
from hvconf.syntax.loader import Program


def plain(value: ast.Value) -> Any:
    """The Python value of a literal (lists become tuples)."""
    if isinstance(value, ast.List):
        return tuple(plain(v) for v in value.items)
    return value.value


def _single(values: tuple[ast.Value, ...]) -> Any:
    return plain(values[-1])


def _first(values: tuple[ast.Value, ...]) -> Any:
    return plain(values[0])


def _htab(values: tuple[ast.Value, ...]) -> Any:
    # The grammar allows only `htab order INT` and `htab auto`: the first value is a keyword Name.
    return "auto" if cast(ast.Name, values[0]).value == "auto" else plain(values[-1])


# setting keyword -> (IR field, how its values become the field's value)
_SETTINGS: dict[str, tuple[str, Callable[[tuple[ast.Value, ...]], Any]]] = {
    "arch": ("arch", _single), "kvm": ("flavour", _single), "memory": ("memory", _single),
    "vcpus": ("vcpus", _single), "threads": ("threads", _single), "htab": ("htab", _htab),
    "rma": ("rma", _single), "mmu": ("mmu", _single), "irqchip": ("irqchip", _single),
    "pit": ("pit", _single), "console": ("console", _single), "kernel": ("kernel", _first),
    "initrd": ("initrd", _single), "cmdline": ("cmdline", _single),
}
_HYPERVISOR_FLAGS = ("idle", "reset", "shutdown")
_HYPERVISOR_KEYS = [*_HYPERVISOR_FLAGS, "compatible", "hcall_instructions"]
_TCE_KEYS = ["liobn", "window", "page", "offset"]
MAX_EXTENDS_DEPTH = 32  # bases above one VM; real definitions use two or three
# Comparisons difflib may spend on did-you-mean names for unknown bases, per program: each
# suggestion compares the name with every VM, so thousands of VMs that each extend a different
# unknown name made lowering quadratic. Past the budget, unknown-base comes without a suggestion.
SUGGESTION_BUDGET = 100_000
# A VM name becomes a folder `out/NAME/`, a file `NAME.dts` and a temporary `.NAME.XXXXXXXX.tmp`
# while writing; 255 bytes is the file-name limit of Linux file systems.
MAX_VM_NAME = 128


class _Merged:
    """Everything a VM and its bases wrote, in source order, before typing."""

    __slots__ = ("fields", "spans", "hcall_ops", "preset", "enforce", "rtas", "caps", "cap_slots", "depth", "tces",
                 "hypervisor", "hypervisor_span", "pv", "guest")

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.spans: dict[str, Span] = {}
        self.hcall_ops: list[ir.HcallOp] = []
        self.preset: tuple[str, Span] | None = None
        self.enforce: Span | None = None
        self.rtas: list[ir.RtasToken] = []
        self.caps: list[ir.CapUse | None] = []  # in source order; None where a derived VM replaced it
        # (cap name, vCPU) -> (position in the chain of the VM that wrote it, its indices in `caps`)
        self.cap_slots: dict[tuple[str, int | None], tuple[int, list[int]]] = {}
        self.depth = 0  # position of the VM whose body is being read
        self.tces: dict[str, ir.Tce] = {}
        self.hypervisor: dict[str, Any] = {}
        self.hypervisor_span: Span | None = None
        self.pv: dict[str, ir.PvFeature] = {}
        self.guest: ir.Guest | None = None


class Lowering:
    """`as_needed`: pydantic validates only what is not plainly valid (hvconf/model/validate.py)."""

    def __init__(self, program: Program, report: Report, as_needed: bool = False) -> None:
        self.program = program
        self.report = report
        self.as_needed = as_needed
        self._close: dict[str, str | None] = {}  # unknown base -> the VM name it may have meant
        self._budget = SUGGESTION_BUDGET

    def lower_all(self) -> list[ir.Vm]:
        vms = []
        for decl in self.program.own_vms:
            vm = self.lower(decl)
            if vm is not None:
                vms.append(vm)
        return vms

    # -- extends -------------------------------------------------------------
    def chain(self, decl: ast.VmDecl) -> list[ast.VmDecl] | None:
        """[root base, ..., decl], or None after reporting a broken `extends`."""
        chain = [decl]
        while chain[-1].base is not None:
            if len(chain) > MAX_EXTENDS_DEPTH:
                # Every VM re-reads its whole chain: unbounded chains would make lowering quadratic.
                self.report.error("extends-too-deep", f"'{decl.name.value}' has more than {MAX_EXTENDS_DEPTH} "
                                  "bases in its `extends` chain", decl.base.span if decl.base else decl.name.span,
                                  help="flatten the chain: put shared settings in fewer abstract VMs")
                return None
            base_ref = chain[-1].base
            base = self.program.vms.get(base_ref.value)
            if base is None:
                close = self._close_name(base_ref.value)
                self.report.error("unknown-base", f"'{chain[-1].name.value}' extends unknown VM '{base_ref.value}'",
                                  base_ref.span, help=f"did you mean '{close}'?" if close else
                                  "include the file that defines it")
                return None
            if any(base is d for d in chain):  # identity: == would compare whole bodies
                notes = [Note(f"'{d.name.value}' extends '{d.base.value}'", d.base.span) for d in chain if d.base]
                self.report.error("extends-cycle", f"'{decl.name.value}' extends itself through its bases",
                                  decl.base.span if decl.base else decl.name.span, notes=notes)
                return None
            chain.append(base)
        return chain[::-1]

    def _close_name(self, name: str) -> str | None:
        """The VM name `name` may have meant, once per name and within SUGGESTION_BUDGET."""
        if name not in self._close:
            names = self.program.vms
            hits = close_matches(name, list(names), n=1) if len(names) <= self._budget else []
            self._budget -= len(names)
            self._close[name] = hits[0] if hits else None
        return self._close[name]

    # -- one VM ---------------------------------------------------------------
    def lower(self, decl: ast.VmDecl) -> ir.Vm | None:
        if len(decl.name.value) > MAX_VM_NAME:
            self.report.error("invalid-value", f"VM name is {len(decl.name.value)} characters long; at most "
                              f"{MAX_VM_NAME} fit in output file names", decl.name.span)
            return None
        chain = self.chain(decl)
        if chain is None:
            return None
        merged = _Merged()
        for depth, vm_decl in enumerate(chain):
            merged.depth = depth
            seen: dict[str, Span] = {}
            for stmt in vm_decl.body:
                self._statement(stmt, merged, seen)
        return self._finish(decl, merged)

    def _statement(self, stmt: ast.Statement, m: _Merged, seen: dict[str, Span]) -> None:
        if isinstance(stmt, ast.Setting):
            field, convert = _SETTINGS[stmt.key]
            if field in seen:
                self.report.warning("duplicate-setting", f"'{stmt.key}' is set twice in this VM; the last one wins",
                                    stmt.span, notes=[Note("set before here", seen[field])])
            seen[field] = stmt.span
            m.fields[field] = convert(stmt.values)
            m.spans[field] = stmt.span
            if stmt.key == "kernel":  # `kernel "FILE" [flat]`: each kernel statement says its own format
                fmt = stmt.values[1] if len(stmt.values) > 1 else None
                m.fields["kernel_format"] = plain(fmt) if fmt is not None else "elf"
                m.spans.pop("kernel_format", None)
                if fmt is not None:
                    m.spans["kernel_format"] = fmt.span
        elif isinstance(stmt, ast.Hcalls):
            self._hcalls(stmt, m)
        elif isinstance(stmt, ast.Rtas):
            m.spans.setdefault("rtas", stmt.span)
            for tok in stmt.tokens:
                token = build(ir.RtasToken, {"name": tok.name.value, "token": tok.token.value, "span": tok.span},
                              self.report, tok.span, {"name": tok.name.span, "token": tok.token.span}, "RTAS token",
                              self.as_needed)
                if token:
                    m.rtas.append(token)
        elif isinstance(stmt, ast.Cap):
            self._cap(stmt, m)
        elif isinstance(stmt, ast.Tce):
            self._tce(stmt, m)
        elif isinstance(stmt, ast.Hypervisor):
            self._hypervisor(stmt, m)
        elif isinstance(stmt, ast.PvFeatures):
            for name in stmt.names:
                m.pv[name.value] = new(ir.PvFeature, {"name": name.value, "span": name.span}, self.as_needed)
            m.spans["pv_features"] = stmt.span
        elif isinstance(stmt, ast.Guest):
            data = {"path": stmt.path.value, "span": stmt.span}
            spans = {"path": stmt.path.span}
            if stmt.mode:
                data["mode"], spans["mode"] = stmt.mode.value, stmt.mode.span
            if stmt.at:
                data["at"], spans["at"] = stmt.at.value, stmt.at.span
            m.guest = build(ir.Guest, data, self.report, stmt.span, spans, "guest", self.as_needed)
            m.spans["guest"] = stmt.span

    def _hcalls(self, stmt: ast.Hcalls, m: _Merged) -> None:
        m.spans.setdefault("hcalls", stmt.span)
        for op in stmt.ops:
            if op.action == "preset":
                m.preset = (str(op.refs[0].value), op.refs[0].span)
            elif op.action == "enforce":
                m.enforce = op.span
            else:
                for ref in op.refs:
                    # The grammar's other actions are enable/disable/exit; pydantic checks it again.
                    action = cast(Literal["enable", "disable", "exit"], op.action)
                    m.hcall_ops.append(new(ir.HcallOp, {"action": action, "ref": ref.value, "span": ref.span},
                                           self.as_needed))

    def _cap(self, stmt: ast.Cap, m: _Merged) -> None:
        scope = stmt.target.kind if stmt.target else None
        vcpu = stmt.target.index.value if stmt.target and stmt.target.index else None
        seen: dict[str, Span] = {}
        args = []
        for kv in stmt.args:
            if kv.key.value in seen:
                self.report.error("duplicate-key", f"argument '{kv.key.value}' is given twice", kv.key.span,
                                  notes=[Note("first given here", seen[kv.key.value])])
                continue
            seen[kv.key.value] = kv.key.span
            if isinstance(kv.value, ast.List) and any(isinstance(v, ast.List) for v in kv.value.items):
                # CapArg has no shape for it; the whole cap is dropped so no check reports it "missing".
                self.report.error("invalid-value", f"cap {stmt.name.value} argument '{kv.key.value}' is a list of "
                                  "lists", kv.value.span, help="arguments are numbers, names, strings or flat lists")
                return
            args.append(new(ir.CapArg, {"name": kv.key.value, "value": plain(kv.value), "span": kv.span},
                            self.as_needed))
        cap = build(ir.CapUse, {"name": stmt.name.value, "scope": scope, "vcpu": vcpu, "args": tuple(args),
                                "span": stmt.span}, self.report, stmt.span, {}, f"cap {stmt.name.value}",
                    self.as_needed)
        if cap is None:
            return
        # A derived VM's cap replaces its bases' uses of the same cap on the same vCPU (or on
        # all of them / the VM: `on vm`, `on vcpus` and the default are one slot, so a wrong
        # fd is reported on the derived line, not hidden behind the base's). Repeats inside one
        # VM are kept for the `cap-duplicate` check.
        # Each use is replaced at most once, so a VM or chain with thousands of caps stays linear.
        depth, uses = m.cap_slots.get((cap.name, cap.vcpu), (m.depth, []))
        if depth != m.depth:
            for index in uses:
                m.caps[index] = None
            uses = []
        uses.append(len(m.caps))
        m.cap_slots[(cap.name, cap.vcpu)] = (m.depth, uses)
        m.caps.append(cap)

    def _kv(self, items: tuple[ast.KeyValue, ...], allowed: list[str], what: str) -> tuple[dict[str, Any], dict[str, Span]]:
        data: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        key_spans: dict[str, Span] = {}
        for kv in items:
            key = kv.key.value.replace("-", "_")
            if key in spans:
                self.report.error("duplicate-key", f"{what} key '{kv.key.value}' is given twice", kv.key.span,
                                  notes=[Note("first given here", spans[key])])
                continue
            data[key], spans[key], key_spans[key] = plain(kv.value), kv.span, kv.key.span
        check_keys(key_spans, allowed, self.report, what)
        return {k: v for k, v in data.items() if k in allowed}, spans

    def _tce(self, stmt: ast.Tce, m: _Merged) -> None:
        data, spans = self._kv(stmt.items, _TCE_KEYS, "tce")
        tce = build(ir.Tce, {**data, "name": stmt.name.value, "span": stmt.span}, self.report, stmt.span, spans,
                    f"tce {stmt.name.value}", self.as_needed)
        if tce:
            m.tces[tce.name] = tce

    def _hypervisor(self, stmt: ast.Hypervisor, m: _Merged) -> None:
        items = []
        for item in stmt.items:
            key = item.name.value.replace("-", "_")
            if key in _HYPERVISOR_FLAGS and item.value is not None:
                self.report.error("invalid-value", f"hypervisor flag '{key}' takes no value", item.value.span,
                                  help=f"write `{key}` alone to set it; leave it out to clear it")
                continue
            if key not in _HYPERVISOR_FLAGS and key in _HYPERVISOR_KEYS and item.value is None:
                self.report.error("invalid-value", f"hypervisor '{key}' needs a value", item.span,
                                  help='compatible "linux,kvm"' if key == "compatible" else "hcall_instructions [0x44000022]")
                continue
            # A bare flag stands for `flag true`; keys keep their values.
            items.append(ast.KeyValue(item.name, item.value if item.value is not None else ast.Name("true", item.span),
                                      item.span))
        data, spans = self._kv(tuple(items), _HYPERVISOR_KEYS, "hypervisor")
        for flag in _HYPERVISOR_FLAGS:
            if flag in data:
                data[flag] = True
        m.hypervisor.update(data)
        m.spans.update({f"hypervisor.{k}": s for k, s in spans.items()})
        m.hypervisor_span = stmt.span
        m.spans["hypervisor"] = stmt.span

    # -- typing and defaults ---------------------------------------------------
    def _finish(self, decl: ast.VmDecl, m: _Merged) -> ir.Vm | None:
        from hvconf.model.target import TargetError, load_target, target_for  # data load only when needed

        fields = dict(m.fields)
        if not decl.abstract:
            for required in ("arch", "memory"):
                if required not in fields:
                    self.report.error("missing-setting", f"VM '{decl.name.value}' does not set '{required}'",
                                      decl.name.span, help=f"add a `{required}` statement (or extend a VM that has one)")
        arch, flavour = fields.get("arch"), fields.get("flavour")
        if arch is not None:
            try:
                target = target_for(arch, None)
            except TargetError as err:
                self.report.error("unknown-arch", str(err), m.spans["arch"])
                return None
            if flavour is not None:
                try:
                    target = target_for(arch, flavour)
                except TargetError as err:
                    self.report.error("unknown-flavour", str(err), m.spans["flavour"])
                    return None
            else:
                fields["flavour"] = load_target(target).default_flavour
            fields["target"] = target
        hypervisor = None
        if m.hypervisor_span is not None:
            hv_spans = {k.split(".", 1)[1]: s for k, s in m.spans.items() if k.startswith("hypervisor.")}
            hypervisor = build(ir.Hypervisor, {**m.hypervisor, "span": m.hypervisor_span}, self.report,
                               m.hypervisor_span, hv_spans, "hypervisor", self.as_needed)
        hcalls = new(ir.Hcalls, {"preset": m.preset[0] if m.preset else None,
                                 "preset_span": m.preset[1] if m.preset else None, "ops": tuple(m.hcall_ops),
                                 "enforce": m.enforce is not None, "enforce_span": m.enforce,
                                 "span": m.spans.get("hcalls")}, self.as_needed)
        data = {**fields, "name": decl.name.value, "abstract": decl.abstract, "hcalls": hcalls,
                "rtas": tuple(m.rtas), "caps": tuple(c for c in m.caps if c is not None), "tces": tuple(m.tces.values()),
                "hypervisor": hypervisor, "pv_features": tuple(m.pv.values()), "guest": m.guest,
                "spans": m.spans, "span": decl.span}
        return build(ir.Vm, data, self.report, decl.span, m.spans, None, self.as_needed)


def lower_program(program: Program, report: Report, as_needed: bool = False) -> list[ir.Vm]:
    """The IR of every VM declared in the program's root file; `as_needed`: see Lowering."""
    return Lowering(program, report, as_needed).lower_all()
