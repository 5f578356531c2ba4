"""The dependency rules of README.md#how-it-is-built and docs/runtime.md.

The compiler never imports the KVM runtime or cffi (nor opens /dev/kvm), and
the runtime needs none of the compiler's libraries, so it can run alone on a
ppc64le host with cffi only; what both read (hvconf/contract.py) is stdlib only.
Inside the runtime: the bottom layer (hvconf/kvm/ioctls) imports nothing
above it; the generic layer (hvconf/kvm/*.py) imports no arch family, and
knows no architecture's names, reaching a family only through the registry
(families.py); the families (x86, powerpc, s390) import no other family and
have the same parts, each with the names the generic layer calls.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from hvconf.kvm.families import FAMILIES, PARTS

PACKAGE = Path(__file__).resolve().parent.parent / "hvconf"
KVM = PACKAGE / "kvm"
COMPILER = ["syntax", "model", "check", "platforms", "emit", "compiler.py", "diagnostics.py", "resources.py"]
RUNTIME_MAY_IMPORT = {"hvconf.kvm", "hvconf.abi", "hvconf.contract", "hvconf.record", "cffi"}
COMPILER_LIBRARIES = {"lark", "pydantic", "jinja2", "pyfdt"}
# What each part of a family must define: the names the generic layer calls (docs/runtime.md).
INTERFACE = {
    "exits": {"handle_exit", "before_run", "stopped_at"},
    "steps": {"STEPS", "check_plan", "reserved"},
    "devices": {"check", "devices", "prepare_images"},
    "hypercalls": set(),
    "host": {"check_host", "facts"},
}
# Names that belong to one architecture; the generic layer's code may hold none of them (docstrings and
# comments may: they say what a family does with a hook).
ARCH_WORDS = ("cpuid", "lpcr", "sregs", "rip", "papr", "epapr", "spapr", "htab", "tce", "rtas", "tlb", "spin",
              "pvinfo", "psw", "x86", "ppc", "powerpc", "s390", "e500", "i8042", "serial")  # fmt: skip


def modules(*parts: str) -> list[Path]:
    out: list[Path] = []
    for part in parts:
        path = PACKAGE / part
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return out


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (functions and TYPE_CHECKING blocks too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def generic_modules() -> list[Path]:
    return sorted(KVM.glob("*.py"))


def family_packages() -> list[str]:
    return sorted(FAMILIES.values())


def test_compiler_never_imports_the_runtime_or_cffi() -> None:
    files = modules(*COMPILER)
    assert len(files) > 20
    offenders = {str(p.relative_to(PACKAGE)): sorted(i for i in imports(p) if under(i, "cffi", "hvconf.kvm"))
                 for p in files}  # fmt: skip
    assert {k: v for k, v in offenders.items() if v} == {}
    assert not [p for p in files if "/dev/kvm" in p.read_text()]


def test_runtime_imports_only_itself_abi_contract_cffi_and_the_stdlib() -> None:
    files = modules("kvm")
    assert files
    bad = {}
    for path in files:
        third_party = {i for i in imports(path) if i.split(".")[0] in COMPILER_LIBRARIES
                       or (i.startswith("hvconf") and not under(i, *RUNTIME_MAY_IMPORT) and i != "hvconf")}
        if third_party:
            bad[str(path.relative_to(PACKAGE))] = sorted(third_party)
    assert bad == {}


def test_the_contract_is_stdlib_only() -> None:
    # it ships with the runtime to a host that has cffi only, and the compiler reads it without the runtime
    for path in modules("contract.py"):
        found = {i for i in imports(path) if i.startswith("hvconf") or i.split(".")[0] in COMPILER_LIBRARIES | {"cffi"}}
        assert {i for i in found if not under(i, "hvconf.contract", "hvconf.record")} == set(), path


def test_the_bottom_layer_imports_nothing_above_it() -> None:
    files = modules("kvm/ioctls")
    assert len(files) > 10
    above = {str(p.relative_to(PACKAGE)): sorted(i for i in imports(p) if under(i, "hvconf.kvm")
                                                 and not under(i, "hvconf.kvm.ioctls"))
             for p in files}  # fmt: skip
    assert {k: v for k, v in above.items() if v} == {}


def test_the_generic_layer_imports_no_family() -> None:
    files = generic_modules()
    assert {"run.py", "launch.py", "vcpu_loop.py", "families.py"} <= {p.name for p in files}
    offenders = {p.name: sorted(i for i in imports(p) if under(i, *family_packages())) for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}
    # and only the registry names them
    naming = [p.name for p in files if any(f'"{package}' in p.read_text() for package in family_packages())]
    assert naming == ["families.py"]


def _words(path: Path) -> set[str]:
    """The words of the names a module's code uses or defines, and of its identifier-like strings (dict keys,
    module names): not of docstrings, comments or messages."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.replace(".", "_").isidentifier():
                names.add(node.value)
    return {w.lower() for name in names for w in re.split(r"[_.]|(?<=[a-z])(?=[A-Z])", name) if w}


# Generic modules that still know one architecture, and why.
KNOWN_ARCH = {"elf.py": "the ELF loader reads x86 executables only, as yet (README.md#status): no family's plans "
                        "load ELF kernels of their own"}  # fmt: skip


def test_the_generic_layer_knows_no_architecture() -> None:
    found = {}
    for path in generic_modules():
        if path.name in ("families.py", *KNOWN_ARCH):  # the registry names the families, and nothing of them
            continue
        words = sorted(_words(path) & set(ARCH_WORDS))
        if words:
            found[path.name] = words
    assert found == {}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_family_imports_no_other_family(family: str) -> None:
    others = [p for f, p in FAMILIES.items() if f != family]
    package = FAMILIES[family].removeprefix("hvconf.").replace(".", "/")
    files = modules(package)
    assert files
    offenders = {p.name: sorted(i for i in imports(p) if under(i, *others)) for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_has_every_part_with_its_names(family: str) -> None:
    # a newcomer finds an arch's exits in hvconf/kvm/<family>/exits.py, its steps in steps.py, ...
    folder = PACKAGE / FAMILIES[family].removeprefix("hvconf.").replace(".", "/")
    assert set(INTERFACE) == set(PARTS)
    for part, names in INTERFACE.items():
        path = folder / f"{part}.py"
        assert path.is_file(), path
        tree = ast.parse(path.read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        defined |= {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                    for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
        assert names <= defined, (path, sorted(names - defined))


def test_abi_is_pure_stdlib() -> None:
    for path in modules("abi"):
        assert not {i for i in imports(path) if i.split(".")[0] in COMPILER_LIBRARIES | {"cffi"}}, path


def test_pyfdt_has_one_importer() -> None:
    # keeping pyfdt behind emit/dtb.py makes it replaceable (pylibfdt, fdt) in one file
    importers = [str(p.relative_to(PACKAGE)) for p in modules(".")
                 if any(i == "pyfdt" or i.startswith("pyfdt.") for i in imports(p))]
    assert importers == ["emit/dtb.py"]


def test_only_the_runtime_opens_dev_kvm() -> None:
    openers = sorted(str(p.relative_to(PACKAGE)) for p in modules(".") if '"/dev/kvm"' in p.read_text())
    assert openers and all(o.startswith("kvm/") for o in openers)


# ---- the compiler's own order (docs/architecture.md#packages-their-jobs-and-what-they-may-import)

COMPILER_ORDER = ["syntax", "model", "check", "platforms", "emit"]  # each may import only those before it
SHARED = {"hvconf.codes", "hvconf.contract", "hvconf.diagnostics", "hvconf.record", "hvconf.resources", "hvconf.abi",
          "hvconf.__version__"}
# What the platform modules build with, though emit/ is above them: the device-tree node model and
# its DTB writer (e500's plan tells the launcher where in the DTB its cpu clocks go), the plan builder and the guest
# assembler (none of them imports platforms/ or the rest of emit/).
BUILDING_BLOCKS = {"hvconf.emit.fdt", "hvconf.emit.dtb", "hvconf.emit.plan", "hvconf.emit.guest"}
# The one import upwards: the host rules build a VM's plan to hold it to a host's facts (`check --host`).
UPWARD = {"check/host.py": {"hvconf.platforms", "hvconf.emit.plan"}}


def _hvconf_packages(path: Path) -> set[str]:
    """The hvconf packages (or top modules) `path` imports: hvconf.model.ir -> hvconf.model."""
    return {".".join(i.split(".")[:2]) for i in imports(path) if i.startswith("hvconf.")}


def _within(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _outside_order(path: Path, level: int, name: str | None = None) -> set[str]:
    """The hvconf modules `path` (`name` in hvconf/, of COMPILER_ORDER[level]) imports that the order
    does not allow."""
    name = name or path.relative_to(PACKAGE).as_posix()
    allowed = SHARED | {f"hvconf.{p}" for p in COMPILER_ORDER[: level + 1]} | UPWARD.get(name, set())
    if level >= COMPILER_ORDER.index("platforms"):
        allowed |= BUILDING_BLOCKS
    names = {i for i in imports(path) if i.startswith("hvconf.")}
    # `from hvconf.emit import fdt` names the package too; judge it by the module it takes
    names -= {n for n in names if any(other.startswith(n + ".") for other in names)}
    return {n for n in names if not _within(n, allowed)}


def test_compiler_packages_import_only_those_below() -> None:
    bad = {}
    for level, package in enumerate(COMPILER_ORDER):
        for path in modules(package):
            extra = _outside_order(path, level)
            if extra:
                bad[str(path.relative_to(PACKAGE))] = sorted(extra)
    assert bad == {}


def test_the_order_check_sees_an_import_upwards(tmp_path: Path) -> None:
    # It once excused every hvconf.* import (a prefix test against "hvconf" itself) and could not fail.
    rogue = tmp_path / "rogue.py"
    rogue.write_text("from hvconf.model import ir\nfrom hvconf.emit.fdt import Node\n")
    assert _outside_order(rogue, 0, "syntax/rogue.py") == {"hvconf.model.ir", "hvconf.emit.fdt.Node"}
    assert _outside_order(rogue, COMPILER_ORDER.index("platforms"), "platforms/rogue.py") == set()
    assert _outside_order(rogue, COMPILER_ORDER.index("check"), "check/rogue.py") == {"hvconf.emit.fdt.Node"}


def test_nothing_imports_the_cli_and_the_compiler_never_imports_lint() -> None:
    cli_importers = [str(p.relative_to(PACKAGE)) for p in modules(".")  # __main__.py is `python -m hvconf`
                     if p.relative_to(PACKAGE).parts[0] not in ("cli", "__main__.py")
                     and "hvconf.cli" in _hvconf_packages(p)]
    assert cli_importers == []
    core = modules(*COMPILER_ORDER, "compiler.py", "codes.py", "diagnostics.py", "formatter")
    lint_importers = [str(p.relative_to(PACKAGE)) for p in core if "hvconf.lint" in _hvconf_packages(p)]
    assert lint_importers == []
