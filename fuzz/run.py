"""The long fuzz run: `python fuzz/run.py --minutes 10`.

Alternates chunks of grammar-driven inputs (hypothesis) and mutated samples
through fuzz.oracle.run_case, and every `--cli-every` cases a batch through
the CLI in a subprocess. Each finding's input is saved to tests/fuzz_corpus/
(add a README line saying what it broke once it is fixed). Prints the cases
run, findings, time since the last finding and peak RSS; exit 1 on findings.
Tested (briefly) by tests/test_fuzz.py.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python fuzz/run.py` from anywhere

from fuzz.cases import CORPUS, Mutator, grammar_text, seed_texts, workspace  # noqa: E402
from fuzz.oracle import Finding, cli_batch, run_case  # noqa: E402

CHUNK = 200


class _Stop(BaseException):
    """Ends a hypothesis chunk early (time is up); not a failure."""


class Run:
    def __init__(self, folder: Path, corpus: Path, seconds: float, seed: int, cli_every: int,
                 max_cases: int | None = None, progress_every: int = 0) -> None:
        self.folder = workspace(folder)
        self.max_cases = max_cases
        self.progress_every = progress_every
        self.corpus = corpus
        self.end = time.monotonic() + seconds
        self.rng = random.Random(seed)
        self.mutator = Mutator(self.rng, seed_texts())
        self.cli_every = cli_every
        self.cases = self.grammar_cases = 0
        self.findings: list[tuple[str, Finding]] = []
        self.last_finding = time.monotonic()
        self.start = time.monotonic()
        self.pending_cli: list[Path] = []
        self.seen: set[str] = set()

    def over(self) -> bool:
        """Time is up, or the requested number of cases has run."""
        return time.monotonic() > self.end or (self.max_cases is not None and self.cases >= self.max_cases)

    def one(self, data: bytes, origin: str) -> None:
        self.cases += 1
        if self.progress_every and self.cases % self.progress_every == 0:
            print(f"{self.cases} cases, {len(self.findings)} findings, {time.monotonic() - self.start:.0f} s",
                  flush=True)
        finding = run_case(data, self.folder)
        if finding is not None:
            self.record(data, finding, origin)
        if self.cli_every and self.cases % self.cli_every == 0:
            path = self.folder / f"cli-{self.cases}.hv"
            path.write_bytes(data)
            self.pending_cli.append(path)
            if len(self.pending_cli) >= 8:
                self.flush_cli()

    def flush_cli(self) -> None:
        paths, self.pending_cli = self.pending_cli, []
        with tempfile.TemporaryDirectory(prefix="hvconf-fuzz-out-") as out:
            for finding in cli_batch(paths, self.folder.parent, Path(out)):
                self.record(b"".join(p.read_bytes() + b"\n" for p in paths), finding, "cli batch")
        for p in paths:
            p.unlink()

    def record(self, data: bytes, finding: Finding, origin: str) -> None:
        key = finding.kind + ":" + finding.detail.strip().splitlines()[-1][:200] if finding.detail.strip() else finding.kind
        self.last_finding = time.monotonic()
        if key in self.seen:
            return
        self.seen.add(key)
        name = f"{finding.kind}-{hashlib.sha256(data).hexdigest()[:10]}.hv"
        self.corpus.mkdir(parents=True, exist_ok=True)
        (self.corpus / name).write_bytes(data)
        self.findings.append((name, finding))
        print(f"FINDING {name} ({origin}): {finding.kind}\n{finding.detail}", flush=True)

    def mutation_chunk(self) -> None:
        for _ in range(CHUNK):
            if self.over():
                return
            op, data = self.mutator.next()
            self.one(data, f"mutation {op}")

    def grammar_chunk(self) -> None:
        from hypothesis import HealthCheck, Phase, given, settings

        @settings(max_examples=CHUNK, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(grammar_text())
        def chunk(text: str) -> None:
            if self.over():
                raise _Stop
            self.grammar_cases += 1
            self.one(text.encode(), "grammar")

        try:
            chunk()
        except _Stop:
            pass

    def loop(self) -> None:
        while not self.over():
            self.grammar_chunk()
            self.mutation_chunk()
        if self.pending_cli:
            self.flush_cli()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--cases", type=int, default=None, help="stop after this many inputs (or at --minutes)")
    ap.add_argument("--progress", type=int, default=0, metavar="N", help="print a line every N inputs")
    ap.add_argument("--cli-every", type=int, default=100, help="send every Nth case through the CLI too (0: never)")
    ap.add_argument("--corpus", type=Path, default=CORPUS, help="where failing inputs are saved")
    ap.add_argument("--max-memory", type=int, default=4096, help="RLIMIT_AS of this process, MiB")
    args = ap.parse_args(argv)
    limit = args.max_memory << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory(prefix="hvconf-fuzz-") as tmp:
        run = Run(Path(tmp), args.corpus, args.minutes * 60, args.seed, args.cli_every, args.cases, args.progress)
        try:
            run.loop()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    elapsed = time.monotonic() - run.start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"seed {args.seed}: {run.cases} cases ({run.grammar_cases} grammar, {run.cases - run.grammar_cases} "
          f"mutations) in {elapsed:.0f} s; {len(run.findings)} findings; "
          f"{time.monotonic() - run.last_finding:.0f} s since the last finding; "
          f"peak RSS {rss >> 10} MiB (started at {rss0 >> 10} MiB)")
    for name, finding in run.findings:
        print(f"  {name}: {finding.kind}")
    return 1 if run.findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
