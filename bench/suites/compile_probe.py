"""Not a suite: the child process scaling.py runs to time compiles without process start-up.

`python compile_probe.py ROUNDS FILE...` imports hvconf.compiler once,
builds every file once untimed (the first build pays for lazy imports and
caches), then times `hvconf.compiler.build([file])` round-robin over the
files, ROUNDS times, and prints {"FILE": [ms, ...]} as JSON. Garbage is
collected (untimed) before each build, so the collection of the previous,
perhaps much larger, build's garbage does not land in the next point. A
file that builds with errors exits 1 with its report, so no broken point
is timed.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    from hvconf import compiler

    rounds, files = int(argv[0]), [Path(a) for a in argv[1:]]
    for path in files:
        result = compiler.build([path])
        if result.report.has_errors or not result.built:
            print(f"{path}: does not build: {[d.message for d in result.report][:3]}", file=sys.stderr)
            return 1
    times: dict[str, list[float]] = {str(p): [] for p in files}
    for _ in range(rounds):
        for path in files:
            gc.collect()
            start = time.perf_counter()
            compiler.build([path])
            times[str(path)].append((time.perf_counter() - start) * 1000.0)
    json.dump(times, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
