"""`hvconf check` validates IR data with pydantic only as needed (hvconf/model/validate.py).

- over the whole corpus (samples/, tests/invalid/, tests/fuzz_corpus/), every output format
  of `hvconf check` is byte for byte what it is when pydantic validates every object, and
  each file's IR is equal, object for object, to the fully validated one;
- the table read from the IR's own field annotations understands every field (a field it
  cannot read would quietly send every object through pydantic);
- a value of the wrong type, out of its bounds, too big for pydantic-core's native ints,
  with a lone surrogate, an unknown or a missing field is not "plain": pydantic sees it;
- a one-file check of a plainly valid file builds no IR validator and never loads
  pydantic's plugin loader (importlib.metadata, email); `hvconf build` validates everything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hvconf import compiler
from hvconf.cli.main import main
from hvconf.diagnostics import Span
from hvconf.lint.driver import discover
from hvconf.model import ir, validate
from hvconf.syntax.loader import InputError

REPO = Path(__file__).resolve().parent.parent
CORPUS = ["samples", "tests/invalid", "tests/fuzz_corpus"]
FORMATS = ["text", "json", "sarif", "github", "gitlab", "junit"]
MODELS = [ir.HcallOp, ir.Hcalls, ir.RtasToken, ir.CapArg, ir.CapUse, ir.Tce, ir.Hypervisor, ir.PvFeature, ir.Guest,
          ir.Vm]
SPAN = Span("a.hv", 1, 1, 1, 2)


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["check", "--no-cache", "--color", "never", *args])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_output_with_the_shortcut_equals_full_validation_over_the_corpus(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # diagnostics show paths relative to the working folder
    paths = [p for p in CORPUS if (REPO / p).is_dir()]
    shortcut = {f: _check(capsys, "--format", f, *paths) for f in FORMATS}
    with monkeypatch.context() as m:
        m.setattr(validate, "is_plain", lambda model, data: False)  # pydantic validates every object
        full = {f: _check(capsys, "--format", f, *paths) for f in FORMATS}
    for fmt in FORMATS:
        assert shortcut[fmt] == full[fmt], fmt
    assert "invalid-value" in shortcut["text"][1]  # the corpus has values only pydantic refuses


def _vms(path: str, as_needed: bool) -> list[ir.Vm] | None:
    try:
        result = compiler.check([Path(path)], as_needed=as_needed)
    except InputError:
        return None
    return result.vms


def _same(a: Any, b: Any) -> None:
    """Equal, and for models also the same fields set (what model_dump(exclude_unset) would see)."""
    assert a == b
    if isinstance(a, ir.IrModel):
        assert type(a) is type(b) and a.model_fields_set == b.model_fields_set
        for name in type(a).model_fields:
            _same(getattr(a, name), getattr(b, name))
    elif isinstance(a, tuple):
        for x, y in zip(a, b):
            _same(x, y)


def test_the_ir_with_the_shortcut_equals_the_validated_ir() -> None:
    plain = validated = 0
    for path in discover([REPO / p for p in CORPUS if (REPO / p).is_dir()]):
        fast, full = _vms(path, True), _vms(path, False)
        assert (fast is None) == (full is None), path
        for a, b in zip(fast or (), full or ()):
            _same(a, b)
        plain += len(fast or ())
        validated += sum(1 for vm in full or ())
    assert plain == validated > 40


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_ir_field_is_read_by_the_table(model: type[ir.IrModel]) -> None:
    tests, _ = validate.plain_fields(model)
    unread = [name for name, test in tests.items() if test is validate._no]
    assert unread == [], f"{model.__name__}: the shortcut cannot read {unread}"
    for name, field in model.model_fields.items():  # every default is a value the field holds
        if not field.is_required():
            assert tests[name](field.get_default(call_default_factory=True)), (model.__name__, name)


@pytest.mark.parametrize(("model", "data", "plain"), [
    (ir.Vm, {"name": "a"}, True),
    (ir.Vm, {"name": "a", "vcpus": 1, "memory": 2 << 20, "htab": "auto", "rma": "none", "spans": {"a": SPAN}}, True),
    (ir.Vm, {"name": "a", "vcpus": 0}, False),  # ge=1
    (ir.Vm, {"name": "a", "memory": 0}, False),  # gt=0
    (ir.Vm, {"name": "a", "memory": 1 << 63}, False),  # a big int: pydantic-core's own path
    (ir.Vm, {"name": "a", "vcpus": True}, False),  # a bool is no int here
    (ir.Vm, {"name": "a", "htab": "big"}, False),  # not the literal
    (ir.Vm, {"name": "a", "mmu": "radix"}, True),
    (ir.Vm, {"name": "a", "mmu": "radiks"}, False),
    (ir.Vm, {"name": "a", "kernel": "k\udcff"}, False),  # a lone surrogate
    (ir.Vm, {"name": "a", "cmdline": "console=hvc0 é"}, True),
    (ir.Vm, {"name": "a", "rtas": [ir.RtasToken.model_construct(name="x", token=1)]}, False),  # a list, not a tuple
    (ir.Vm, {"name": "a", "bogus": 1}, False),  # extra="forbid"
    (ir.Vm, {"vcpus": 2}, False),  # name is required
    (ir.Vm, {"name": "a", "span": "a.hv:1"}, False),  # not a Span
    (ir.RtasToken, {"name": "x" * 119, "token": 0xFFFF_FFFF}, True),
    (ir.RtasToken, {"name": "x" * 120, "token": 1}, False),  # max_length
    (ir.RtasToken, {"name": "", "token": 1}, False),  # min_length
    (ir.RtasToken, {"name": "x", "token": 1 << 32}, False),  # le
    (ir.CapArg, {"name": "x", "value": (1, "a")}, True),
    (ir.CapArg, {"name": "x", "value": ((1,),)}, False),
    (ir.HcallOp, {"action": "enable", "ref": 0x300}, True),
    (ir.HcallOp, {"action": "toggle", "ref": 0x300}, False),
])
def test_only_plainly_valid_data_skips_pydantic(model: type[ir.IrModel], data: dict[str, Any], plain: bool) -> None:
    assert validate.is_plain(model, data) is plain
    if plain:  # and what it makes is what validation makes
        _same(validate.new(model, data, as_needed=True), model.model_validate(data))


def test_a_model_with_a_validator_gets_no_shortcut() -> None:
    from pydantic import field_validator

    class Checked(ir.IrModel):
        name: str

        @field_validator("name")
        @classmethod
        def _upper(cls, value: str) -> str:
            return value.upper()

    assert not validate.is_plain(Checked, {"name": "a"})
    assert validate.new(Checked, {"name": "a"}, as_needed=True).name == "A"


_PROBE = ("import sys; from hvconf.cli.main import main; from hvconf.model import ir;"
          "status = main(sys.argv[1:]);"
          "print(status, sorted(n for n, c in vars(ir).items() if isinstance(c, type) and issubclass(c, ir.IrModel)"
          " and c.__pydantic_complete__), 'importlib.metadata' in sys.modules, 'email' in sys.modules)")


def _probe(tmp_path: Path, *args: str) -> str:
    """What the IR models built and what was imported, in a process whose validated targets come
    from the per-user cache (hvconf/model/kbcache.py: the first run of all validates them)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, env=env,
                              timeout=120, cwd=REPO)
        assert done.returncode in (0, 1), done.stderr
    return done.stdout.splitlines()[-1]


def test_a_plainly_valid_file_is_checked_without_building_a_validator(tmp_path: Path) -> None:
    sample = str(REPO / "samples" / "pseries.hv")  # hcalls, caps, TCEs, RTAS tokens
    assert _probe(tmp_path, "check", "--no-cache", sample) == "0 [] False False"
    bad = tmp_path / "bad.hv"  # a value only pydantic refuses: the Vm validator is built and says so
    bad.write_text("format 1\nvm a {\n    arch x86_64\n    memory 2M\n    vcpus 0\n}\n")
    assert _probe(tmp_path, "check", "--no-cache", str(bad)).startswith("1 ['Vm']")
    # `build` validates every object with pydantic
    built = _probe(tmp_path, "build", "-o", str(tmp_path / "out"), sample)
    assert built.startswith("0 [") and "'Vm'" in built and "'Tce'" in built and "'RtasToken'" in built
