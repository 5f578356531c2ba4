"""`hvconf diff`: what a change does to the compiled VMs (hvconf/lint/vmdiff.py compares them).

Two sides: `hvconf diff OLD NEW` (two files or two folders), or `hvconf diff --base REF
[PATH...]`, REF's version of the paths against the working tree. A folder of build outputs
(`hvconf build -o DIR`, each VM's plan.json and DTB) is compared the same way, so committed
outputs are reviewed by meaning, without the churn of their source locations. REF's tree is written by
`git archive REF` into a temporary folder, read with tarfile's `data` filter (no absolute
paths, no `..`, no links that leave the folder, no devices) and removed afterwards; that folder
is its own project (a `.git` marker), so its definitions read only files of REF's tree; a
member the filter refuses is left out (an include of it is then not found). Both
sides are built in memory (nothing is written but that folder). Exit status: 0 no change,
1 changes, 2 errors (a side that does not compile, a bad REF, a usage error).
Tested by tests/test_vmdiff.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hvconf.emit.artifacts import Built

    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_SAME, EXIT_CHANGED, EXIT_ERROR = 0, 1, 2

EXAMPLES = """examples:
  hvconf diff --base origin/main                      what this branch does to every VM below .
  hvconf diff --base HEAD~1 vms/ --format markdown    a pull-request comment
  hvconf diff old/pseries.hv samples/pseries.hv       two files (or two folders)

exit status: 0 no change, 1 changes, 2 errors. Moved lines and comments are no change.
See docs/ci.md#hvconf-diff-in-pull-requests.
"""


class DiffError(Exception):
    """A side that cannot be compared; the message is one line (exit status 2)."""


class _Output:
    """A VM of a build output folder (`hvconf build -o DIR`): its plan.json and DTB, as Built has them."""

    class _Vm:
        def __init__(self, name: str) -> None:
            self.name = name

    def __init__(self, folder: Path) -> None:
        import json

        self.plan = json.loads(folder.joinpath("plan.json").read_text(encoding="utf-8"))
        self.vm = self._Vm(str(self.plan["vm"]))
        dtb = folder / f"{self.vm.name}.dtb"
        self.files = {dtb.name: dtb.read_bytes()} if dtb.is_file() else {}


def _outputs(path: str) -> list[Path] | None:
    """The VM folders of a build output folder (each holds plan.json), or None when `path` is
    not one (it holds .hv files, or no plan.json one level down)."""
    folder = Path(path)
    if not folder.is_dir() or (folder / "plan.json").is_file():
        return [folder] if (folder / "plan.json").is_file() else None
    found = sorted(p.parent for p in folder.glob("*/plan.json"))
    return found if found and not any(folder.rglob("*.hv")) else None


def _built(paths: list[str], root: str | None, allow: tuple[str, ...], label: str) -> list[Any]:
    """The VMs of every .hv file of `paths` (missing paths: none), built in memory; or, for a
    build output folder, the VMs it holds (committed outputs are compared by meaning too)."""
    from hvconf import compiler
    from hvconf.lint.driver import UsageError, discover
    from hvconf.lint.render import render
    from hvconf.syntax.loader import InputError, Loader

    present = [p for p in paths if os.path.lexists(p)]
    if not present:
        return []
    outputs = [_outputs(p) for p in present]
    if all(o is not None for o in outputs):
        try:
            return [_Output(folder) for found in outputs for folder in found or ()]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DiffError(f"{label}: not a build output folder ({err})") from None
    try:
        files = discover(present)
        result = compiler.build([Path(f) for f in files], loader=Loader(root, allow))
    except (UsageError, InputError) as err:
        raise DiffError(f"{label}: {err}") from None
    if result.report.has_errors:
        for d in result.report.errors:
            print(render(d, result.report.sources), file=sys.stderr)
        raise DiffError(f"{label} does not compile ({len(result.report.errors)} errors)")
    return result.built


def _git(*args: str, cwd: str, data: bool = False) -> Any:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=300, check=False)
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise DiffError(f"git {args[0]}: {said[-1] if said else 'failed'}")
    return done.stdout if data else done.stdout.decode().strip()


def extract(ref: str, top: str, into: str) -> None:
    """REF's whole tree into `into`, safely (see the module docstring)."""
    import tarfile

    if ref.startswith("-"):
        raise DiffError(f"not a revision: {ref!r}")
    if not hasattr(tarfile, "data_filter"):  # Python 3.11.4 added the extraction filters (PEP 706)
        raise DiffError("--base needs Python 3.11.4 or later, whose tarfile can unpack a tree safely")
    commit = _git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", cwd=top)
    proc = subprocess.Popen(["git", "archive", "--format=tar", commit], cwd=top, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    def safe(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        try:  # what the `data` filter refuses (a link out of the tree, a device) is left out
            return tarfile.data_filter(member, path)
        except tarfile.FilterError:
            return None

    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            tar.extractall(into, filter=safe)
        while proc.stdout.read(1 << 16):  # the padding after the end-of-archive blocks: git writes it too,
            pass  # and a pipe closed before it is read ends git with SIGPIPE
    except (tarfile.TarError, OSError) as err:
        proc.kill()
        raise DiffError(f"cannot unpack {ref}: {err}") from None
    finally:
        proc.stdout.close()
        status = proc.wait(timeout=300)
    if status != 0:
        raise DiffError(f"git archive {ref} failed")
    os.makedirs(os.path.join(into, ".git"), exist_ok=True)  # its own project: reads stay in REF's tree


def _sides(args: argparse.Namespace, tmp: str) -> tuple[list[str], list[str], str | None, str]:
    """(old paths, new paths, the old side's project root, the old side's label)."""
    if args.base is None:
        if len(args.paths) != 2:
            raise DiffError("give two files or folders (OLD NEW), or --base REF [PATH...]")
        return [args.paths[0]], [args.paths[1]], args.root, args.paths[0]
    top = _git("rev-parse", "--show-toplevel", cwd=os.getcwd())
    paths = args.paths or ["."]
    rels = []
    for p in paths:
        rel = os.path.relpath(os.path.realpath(p), os.path.realpath(top))
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            raise DiffError(f"{p}: outside the repository {top}")
        rels.append(rel)
    extract(args.base, top, tmp)
    return [os.path.join(tmp, r) for r in rels], paths, tmp, args.base


def cmd_diff(args: argparse.Namespace) -> int:
    from hvconf.lint.vmdiff import RENDERERS, compare

    tmp = tempfile.mkdtemp(prefix="hvconf-diff-")
    try:
        old_paths, new_paths, old_root, label = _sides(args, tmp)
        allow = tuple(args.allow_path or ())
        old = _built(old_paths, old_root, () if args.base else allow, label)
        new = _built(new_paths, args.root, allow, "the working tree" if args.base else args.paths[1])
        if not old and not new and not any(os.path.lexists(p) for p in old_paths + new_paths):
            raise DiffError("no such file or folder on either side")
    except DiffError as err:
        print(f"hvconf diff: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    changes = compare(old, new)
    sys.stdout.write(RENDERERS[args.format](changes))
    return EXIT_SAME if changes.empty else EXIT_CHANGED


def register(sub: "SubParsers") -> None:
    p = sub.add_parser("diff", help="what a change does to the compiled VMs (ioctls, device tree, caps, hcalls)",
                       description="Compare the compiled VMs of two revisions by meaning: ioctl steps added,\n"
                                   "removed or changed, device-tree nodes and properties, caps and hcalls\n"
                                   "switched, images. Moved lines and comments are no change.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="OLD NEW (files or folders); with --base: the paths to compare (default: .)")
    p.add_argument("--base", metavar="REF", help="compare REF's version of PATH... with the working tree (git)")
    p.add_argument("--format", choices=["text", "markdown", "json"], default="text",
                   help="text, markdown (a pull-request comment) or json (default: text)")
    p.add_argument("--root", metavar="DIR", help="the working tree's project folder (default: its repository)")
    p.add_argument("--allow-path", action="append", metavar="DIR",
                   help="also let the working tree's definitions read below DIR (repeatable)")
    p.set_defaults(func=cmd_diff)


__all__ = ["cmd_diff", "extract", "register"]
