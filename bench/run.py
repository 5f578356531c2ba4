"""The one benchmark command: `python bench/run.py [--quick] [--full] [--no-install]`.

Installs the comparators (install.py), prepares the floor and guests
(context.py), runs every suite in bench/suites/ into a temporary folder,
profiles the sides that miss a goal (profile.py) and writes
bench/results/latest.{json,md} and scaling.png (report.py). Not part of
the test run; it commits nothing and writes nothing else in the repository.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import install, profile, report  # noqa: E402
from bench.context import BENCH, REPO, Context, Counts, prepare  # noqa: E402
from bench.measure import MeasureError  # noqa: E402
from bench.measurements import Row, Series, not_measured  # noqa: E402
from bench.suites import build, exits, launch, linuxboot, lint, reposize, scaling, size  # noqa: E402

SUITES: dict[str, ModuleType] = {"launch": launch, "exits": exits, "lint": lint, "build": build,
                                 "scaling": scaling, "reposize": reposize, "size": size, "linuxboot": linuxboot}
# Suites only --full (or --only) runs: `size` writes 10,000 VM folders and takes minutes; `linuxboot`
# boots the emulated POWER9 twice.
FULL_ONLY = frozenset({"size", "linuxboot"})
COUNTS = {
    "quick": Counts(launch=8, exits=3, lint=3, cold=8, build=2, scaling=2, repo_sizes=(10, 100, 1000)),
    "default": Counts(launch=25, exits=7, lint=7, cold=20, build=5, scaling=3,
                      repo_sizes=(10, 30, 100, 300, 1000, 3000)),
    "full": Counts(launch=25, exits=7, lint=7, cold=20, build=5, scaling=3,
                   repo_sizes=(10, 30, 100, 300, 1000, 3000, 10000)),
}
RESULTS = BENCH / "results"


VENV = BENCH / ".venv"  # kept between runs (git ignores it); only hvconf is reinstalled each run
BYTECODE_NOTE = ("children run with a bytecode cache (PYTHONPYCACHEPREFIX in the run's temporary folder, "
                 "PYTHONDONTWRITEBYTECODE unset), as after `pip install`, which compiles it; the warm-up rounds "
                 "fill it. `lint.cold_as_found` shows start-up in the environment as this machine set it")
CACHE_NOTE = ("hvconf's per-user cache (XDG_CACHE_HOME: parser tables, validated targets) is a fresh folder in "
              "the run's temporary folder; warm-up rounds fill it, as a user's first run does")


def _with_bytecode_cache(folder: Path) -> None:
    """Give every child a bytecode cache outside the repository (without a virtualenv only).

    This machine sets PYTHONDONTWRITEBYTECODE=1 and the editable hvconf has no
    __pycache__, so each process would compile every hvconf module from source:
    that is an environment cost, not hvconf's, and users' installs have bytecode."""
    folder.mkdir()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(folder)


def _interpreter(allow_install: bool, tmp: Path) -> tuple[str, str]:
    """The interpreter the suites use and a note: bench/.venv's (the environment for every child
    then leaves it alone), else this one with a bytecode cache."""
    python, note = install.ensure_venv(VENV, REPO, allow_install, _log)
    if python is not None:
        clean = install.clean_env(os.environ)
        os.environ.clear()
        os.environ.update(clean)
        return str(python), (f"hvconf and `python -c pass` run in {note}; `lint.cold_as_found` is the "
                             f"interpreter run.py was started with ({sys.executable}), as found")
    _log(f"venv: {note}; measuring with {sys.executable} as found")
    _with_bytecode_cache(tmp / "pycache")
    return sys.executable, f"no clean virtualenv ({note}): measured with {sys.executable}. " + BYTECODE_NOTE


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _version(cmd: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "absent"
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0] if first else "?"


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _meta(mode: str, argv: Sequence[str], ctx: Context, started: str) -> dict[str, Any]:
    commit = _version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    # The run's own outputs (bench/results) are not changes to what was measured.
    dirty = _version(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "--", ".",
                      ":(exclude)bench/results"])
    return {
        "started": started,
        "mode": mode,
        "command": "python bench/run.py " + " ".join(argv),
        "counts": ctx.counts.__dict__,
        "load_average": {"start": ctx.load_at_start, "end": list(os.getloadavg())},
        "host": {"cpu": _cpu(), "cores": os.cpu_count(), "kernel": platform.release(),
                 "python": platform.python_version(), "machine": platform.machine()},
        "hvconf": {"commit": commit + (" (+ uncommitted changes)" if dirty not in ("", "?", "absent") else ""),
                   "command": " ".join(ctx.hvconf)},
        "versions": {"qemu": _version(["qemu-system-x86_64", "--version"]), "dtc": _version(["dtc", "--version"]),
                     "gcc": _version(["gcc", "--version"])},
        "notes": ctx.notes + [f"not available: {k}: {v}" for k, v in {**ctx.avail.missing, **ctx.missing}.items()],
    }


def _run_suites(ctx: Context, names: Sequence[str]) -> list[Row | Series]:
    records: list[Row | Series] = []
    for name in names:
        began = time.monotonic()
        try:
            records += SUITES[name].run(ctx)
        except MeasureError as err:  # a broken side is reported as failed, never timed
            _log(f"{name}: FAILED: {err}")
            records.append(not_measured(f"{name}.error", name, f"suite {name}", "", None, str(err), "failed"))
        _log(f"{name}: done in {time.monotonic() - began:.0f} s")
    return records


def _profile_misses(ctx: Context, records: Sequence[Row | Series]) -> None:
    for rec in records:
        if rec.verdict == "missed":
            try:
                text = profile.profile_for(rec.id, ctx)
            except (subprocess.SubprocessError, OSError) as err:
                text = f"profiling failed: {err}\n"
            if text is not None:
                path = profile.write(rec.id, text, RESULTS / "profiles")
                rec.extra["profile"] = str(path.relative_to(REPO))
                _log(f"profile: {rec.id} -> {path.relative_to(REPO)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and points (about 2 minutes)")
    parser.add_argument("--full", action="store_true",
                        help="lint scaling up to 10,000 files; the `size` suite (10,000 includes and VMs)")
    parser.add_argument("--no-install", action="store_true", help="install nothing; skip what is missing")
    parser.add_argument("--only", metavar="SUITE,...", help=f"run only these of: {', '.join(SUITES)}")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is logged)")
    args = parser.parse_args(argv)
    args_list = list(argv if argv is not None else sys.argv[1:])
    names = args.only.split(",") if args.only else [n for n in SUITES if args.full or n not in FULL_ONLY]
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(unknown)}")
    mode = "quick" if args.quick else "full" if args.full else "default"
    counts = COUNTS[mode]
    if args.quick and args.full:
        counts = Counts(**{**COUNTS["quick"].__dict__, "repo_sizes": COUNTS["full"].repo_sizes})
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    began = time.monotonic()

    avail = install.ensure(allow_install=not args.no_install, log=_log)
    tmp = Path(tempfile.mkdtemp(prefix="hvconf-bench-"))
    _log(f"temporary folder {tmp}")
    as_found = dict(os.environ)
    here = os.getcwd()
    os.chdir(tmp)  # `python -c` children put the working directory first on sys.path: not the checkout
    try:
        python, interpreter_note = _interpreter(not args.no_install, tmp)
        os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")
        ctx = prepare(tmp, counts, args.quick, avail, _log, python=python)
        ctx.env_as_found = as_found
        ctx.load_at_start = list(os.getloadavg())
        ctx.notes += [interpreter_note, CACHE_NOTE]
        records = _run_suites(ctx, names)
        RESULTS.mkdir(exist_ok=True)
        shutil.rmtree(RESULTS / "profiles", ignore_errors=True)  # profiles belong to the run that wrote them
        _profile_misses(ctx, records)
        meta = _meta(mode + (f" (only {args.only})" if args.only else ""), args_list, ctx, started)
        no_plot = report.write_plot(RESULTS / "scaling.png", records)
        if no_plot:
            (RESULTS / "scaling.png").unlink(missing_ok=True)  # never leave another run's plot beside this table
            meta["notes"].append(no_plot)
        meta["seconds"] = round(time.monotonic() - began, 1)
        report.write_json(RESULTS / "latest.json", meta, records)
        text = report.markdown(meta, records)
        (RESULTS / "latest.md").write_text(text)
    finally:
        os.chdir(here)
        if args.keep:
            _log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(text)
    _log(f"wrote {RESULTS.relative_to(REPO)}/latest.json, latest.md, scaling.png in {time.monotonic() - began:.0f} s")
    return 1 if any(r.verdict == "failed" for r in records) else 0


if __name__ == "__main__":
    raise SystemExit(main())
