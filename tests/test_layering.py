"""The dependency rule of README.md#how-it-is-built: the compiler never imports the KVM
runtime or cffi (nor opens /dev/kvm), and the runtime needs none of the
compiler's libraries, so it can run alone on a ppc64le host with cffi only."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "hvconf"
COMPILER = ["syntax", "model", "check", "arch", "emit", "compiler.py", "diagnostics.py", "resources.py"]
RUNTIME_MAY_IMPORT = {"hvconf.kvm", "hvconf.abi", "hvconf.record", "cffi"}
COMPILER_LIBRARIES = {"lark", "pydantic", "jinja2", "pyfdt"}


def modules(*parts: str) -> list[Path]:
    out: list[Path] = []
    for part in parts:
        path = PACKAGE / part
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return out


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_compiler_never_imports_the_runtime_or_cffi() -> None:
    files = modules(*COMPILER)
    assert len(files) > 20
    offenders = {str(p.relative_to(PACKAGE)): sorted(i for i in imports(p)
                 if i == "cffi" or i.startswith("cffi.") or i == "hvconf.kvm" or i.startswith("hvconf.kvm."))
                 for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}
    assert not [p for p in files if "/dev/kvm" in p.read_text()]


def test_runtime_imports_only_itself_abi_cffi_and_the_stdlib() -> None:
    files = modules("kvm")
    assert files
    bad = {}
    for path in files:
        third_party = {i for i in imports(path) if i.split(".")[0] in COMPILER_LIBRARIES
                       or (i.startswith("hvconf") and not any(i == m or i.startswith(m + ".") for m in RUNTIME_MAY_IMPORT)
                           and i != "hvconf")}
        if third_party:
            bad[str(path.relative_to(PACKAGE))] = sorted(third_party)
    assert bad == {}


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

COMPILER_ORDER = ["syntax", "model", "check", "arch", "emit"]  # each may import only those before it
SHARED = {"hvconf", "hvconf.codes", "hvconf.diagnostics", "hvconf.record", "hvconf.resources", "hvconf.abi"}


def _hvconf_packages(path: Path) -> set[str]:
    """The hvconf packages (or top modules) `path` imports: hvconf.model.ir -> hvconf.model."""
    return {".".join(i.split(".")[:2]) for i in imports(path) if i.startswith("hvconf.")}


def test_compiler_packages_import_only_those_below() -> None:
    bad = {}
    for level, package in enumerate(COMPILER_ORDER):
        allowed = SHARED | {f"hvconf.{p}" for p in COMPILER_ORDER[: level + 1]}
        for path in modules(package):
            extra = {i for i in _hvconf_packages(path) if i not in allowed
                     and not any(i.startswith(s + ".") for s in SHARED)}
            if extra:
                bad[str(path.relative_to(PACKAGE))] = sorted(extra)
    assert bad == {}


def test_nothing_imports_the_cli_and_the_compiler_never_imports_lint() -> None:
    cli_importers = [str(p.relative_to(PACKAGE)) for p in modules(".")  # __main__.py is `python -m hvconf`
                     if p.relative_to(PACKAGE).parts[0] not in ("cli", "__main__.py")
                     and "hvconf.cli" in _hvconf_packages(p)]
    assert cli_importers == []
    core = modules(*COMPILER_ORDER, "compiler.py", "codes.py", "diagnostics.py", "formatter")
    lint_importers = [str(p.relative_to(PACKAGE)) for p in core if "hvconf.lint" in _hvconf_packages(p)]
    assert lint_importers == []
