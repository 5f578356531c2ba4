"""Not a suite: the child process scaling.py and size.py run to time compiles without process start-up.

`python compile_probe.py [--check | --write DIR] ROUNDS FILE...` imports
hvconf.compiler once, builds every file once untimed (the first build pays for
lazy imports and caches), then times `hvconf.compiler.build([file])` (with
`--check`: `hvconf.compiler.check([file])`) round-robin over the files, ROUNDS
times, and prints {"FILE": [ms, ...]} as JSON. With `--write DIR` it times
writing each file's built artifacts instead (hvconf.emit.output.write_tree)
into a fresh folder under DIR, and again over that output (a rebuild), as
"FILE" and "FILE:rewrite"; the folders are removed untimed. Garbage is
collected (untimed) before each timed call, so the collection of the
previous, perhaps much larger, job's garbage does not land in the next point.
A file that builds with errors exits 1 with its report, so no broken point
is timed.
"""

from __future__ import annotations

import gc
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _timed(job: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    job()
    return (time.perf_counter() - start) * 1000.0


def main(argv: list[str]) -> int:
    from hvconf import compiler
    from hvconf.emit.output import write_tree

    mode, write_dir = "build", None
    if argv[0] == "--check":
        mode, argv = "check", argv[1:]
    elif argv[0] == "--write":
        mode, write_dir, argv = "write", Path(argv[1]), argv[2:]
    rounds, files = int(argv[0]), [Path(a) for a in argv[1:]]
    built = {}
    for path in files:
        result = compiler.build([path])
        if result.report.has_errors or not result.built:
            print(f"{path}: does not build: {[d.message for d in result.report][:3]}", file=sys.stderr)
            return 1
        if mode == "write":
            built[path] = {b.vm.name: b.files for b in result.built}
    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        for path in files:
            if mode == "write":
                assert write_dir is not None
                out = Path(tempfile.mkdtemp(dir=write_dir)) / "out"
                times.setdefault(str(path), []).append(_timed(lambda: write_tree(out, built[path])))
                times.setdefault(f"{path}:rewrite", []).append(_timed(lambda: write_tree(out, built[path])))
                shutil.rmtree(out.parent)
            else:
                job = compiler.check if mode == "check" else compiler.build
                times.setdefault(str(path), []).append(_timed(lambda: job([path])))
    json.dump(times, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
