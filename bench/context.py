"""What every suite needs, prepared once: commands, sample counts, the C floor, built guests.

`prepare(...)` compiles bench/floor/floor.c with gcc -O2, builds the hello
and exit-loop launchers with `hvconf build`, and assembles the QEMU BIOS
image, all into the run's temporary folder; nothing is written into the
repository. A part that cannot be prepared is recorded in `missing` with
the reason, so the suites that need it skip with that note.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.install import Availability

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
QEMU_BIOS_SIZE = 64 * 1024  # QEMU refuses a -bios image that is not a multiple of 64 KiB


@dataclass(frozen=True)
class Counts:
    """Samples per measurement; `quick` and `full` pick among these in run.py."""

    launch: int
    exits: int
    lint: int
    cold: int
    build: int
    scaling: int
    repo_sizes: tuple[int, ...]


@dataclass
class Context:
    tmp: Path
    counts: Counts
    quick: bool
    avail: Availability
    log: Callable[[str], None]
    python: str = sys.executable  # what the suites run: bench/.venv's python when it could be set up
    hvconf: list[str] = field(default_factory=list)
    found_hvconf: list[str] = field(default_factory=list)  # the hvconf of the interpreter run.py runs under
    floor: Path | None = None
    hello_dir: Path | None = None  # out/x86-hello from `hvconf build samples/x86-hello.hv`
    exitloop_dir: Path | None = None
    qemu_bios: Path | None = None
    missing: dict[str, str] = field(default_factory=dict)  # part -> why it is not there
    env_as_found: dict[str, str] = field(default_factory=dict)  # the environment before run.py set its cache
    load_at_start: list[float] = field(default_factory=list)  # os.getloadavg(): this machine is shared
    notes: list[str] = field(default_factory=list)

    def why_missing(self, *parts: str) -> str | None:
        """The first reason one of `parts` (prepared parts or comparators) is unavailable."""
        for part in parts:
            if part in self.missing:
                return self.missing[part]
            if part in self.avail.missing:
                return self.avail.missing[part]
        return None


def hvconf_command(python: str = sys.executable) -> list[str]:
    """The `hvconf` console script next to `python` (what users run), else `python -m hvconf`.

    Not the first `hvconf` on PATH: a version manager's shell shim there would add its
    own start-up time to every hvconf sample."""
    script = Path(python).parent / "hvconf"
    return [str(script)] if script.is_file() else [python, "-m", "hvconf"]


def _try(ctx: Context, part: str, action: Callable[[], None]) -> None:
    try:
        action()
    except (subprocess.CalledProcessError, OSError) as err:
        detail = getattr(err, "stderr", None) or b""
        text = detail.decode(errors="replace").strip().splitlines()[-1:] if isinstance(detail, bytes) else []
        ctx.missing[part] = f"could not prepare {part}: {err}{' — ' + text[0] if text else ''}"
        ctx.log(f"prepare: {ctx.missing[part]}")


def _build_floor(ctx: Context) -> None:
    out = ctx.tmp / "floor"
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out), str(BENCH / "floor" / "floor.c")],
                   check=True, capture_output=True)
    ctx.floor = out


def _build_guests(ctx: Context) -> None:
    out = ctx.tmp / "out"
    subprocess.run([*ctx.hvconf, "build", str(REPO / "samples" / "x86-hello.hv"), str(BENCH / "exitloop.hv"),
                    "-o", str(out)], check=True, capture_output=True)
    ctx.hello_dir, ctx.exitloop_dir = out / "x86-hello", out / "exitloop"


def _build_qemu_bios(ctx: Context) -> None:
    obj, raw = ctx.tmp / "qemu-bios.o", ctx.tmp / "qemu-bios.raw"
    subprocess.run(["as", "--32", "-o", str(obj), str(BENCH / "guests" / "qemu-bios.S")], check=True,
                   capture_output=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(obj), str(raw)], check=True, capture_output=True)
    code = raw.read_bytes()
    if len(code) != 16:
        raise OSError(f"qemu-bios.S assembled to {len(code)} bytes, not 16")
    # The code must end the image: the reset vector is the image's last 16 bytes.
    image = ctx.tmp / "qemu-bios.bin"
    image.write_bytes(b"\xf4" * (QEMU_BIOS_SIZE - len(code)) + code)
    ctx.qemu_bios = image


def prepare(tmp: Path, counts: Counts, quick: bool, avail: Availability, log: Callable[[str], None],
            python: str = sys.executable) -> Context:
    """`python`: the interpreter to measure hvconf with (bench/.venv's, see install.ensure_venv)."""
    ctx = Context(tmp, counts, quick, avail, log, python=python, hvconf=hvconf_command(python),
                  found_hvconf=hvconf_command())
    log(f"prepare: hvconf is `{' '.join(ctx.hvconf)}`, python {ctx.python}")
    if avail.has("gcc"):
        _try(ctx, "floor", lambda: _build_floor(ctx))
    else:
        ctx.missing["floor"] = avail.missing["gcc"]
    if avail.has("as") and avail.has("objcopy"):
        _try(ctx, "guests", lambda: _build_guests(ctx))
        _try(ctx, "qemu_bios", lambda: _build_qemu_bios(ctx))
    else:
        ctx.missing["guests"] = ctx.missing["qemu_bios"] = "GNU as/objcopy missing: no guest images"
    if shutil.which("qemu-system-x86_64") is None and "qemu" not in avail.missing:
        ctx.missing["qemu"] = "qemu-system-x86_64 not found"
    return ctx
