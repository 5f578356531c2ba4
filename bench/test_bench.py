"""Tests of the benchmark suite's own parts: `python -m pytest bench/test_bench.py -q`.

Outside the default test run (pyproject's testpaths is tests/). Real where it
can be: children are really spawned and timed, generated definitions are
really checked by hvconf, the C floor really runs a guest on /dev/kvm.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bench import inputs
from bench.context import BENCH, hvconf_command
from bench.measure import MeasureError, Timing, interleave, least_squares, run, summary
from bench.measurements import Goal, Point, Row, Series, Side
from bench.suites.exits import EXITS, floor_us_per_exit, launcher_us_per_exit

KVM = os.access("/dev/kvm", os.R_OK | os.W_OK)


def test_least_squares_recovers_a_line() -> None:
    fit = least_squares([1, 2, 3, 4], [5, 7, 9, 11])
    assert fit.slope == pytest.approx(2.0) and fit.intercept == pytest.approx(3.0) and fit.r2 == pytest.approx(1.0)


def test_least_squares_refuses_one_x() -> None:
    with pytest.raises(ValueError):
        least_squares([2, 2], [1, 3])


def test_summary_is_median_min_max() -> None:
    s = summary([5.0, 1.0, 9.0, 3.0])
    assert (s.median, s.min, s.max, s.n) == (4.0, 1.0, 9.0, 4)


def test_run_times_a_child_and_reads_its_peak_rss() -> None:
    sample = run([sys.executable, "-c", "b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096])"])
    assert sample.status == 0 and sample.seconds > 0
    assert sample.maxrss_kib > 64 * 1024  # the 64 MiB it touched


BUSY = "import time; t = time.process_time()\nwhile time.process_time() - t < 0.3: pass"


def test_run_reads_cpu_time_of_the_child_and_what_it_reaped() -> None:
    busy = run([sys.executable, "-c", BUSY])
    idle = run([sys.executable, "-c", "import time; time.sleep(0.3)"])
    assert busy.cpu_seconds >= 0.3 and idle.seconds >= 0.3
    assert idle.cpu_seconds < busy.cpu_seconds - 0.2  # a sleeping child costs wall time, not CPU
    # a grandchild that the child waited for is counted too (a shell loop's dtc processes)
    nested = run(["sh", "-c", 'for i in 1 2; do "$0" -c "$1" || exit 1; done', sys.executable, BUSY])
    assert nested.cpu_seconds >= 0.6


def test_run_raises_on_a_wrong_status_with_stderr() -> None:
    with pytest.raises(MeasureError, match="exit status 3.*said: boom"):
        run([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])


def test_run_kills_at_the_timeout() -> None:
    with pytest.raises(MeasureError, match="killed"):
        run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)


def test_interleave_alternates_and_drops_warmup() -> None:
    order: list[str] = []

    def side(name: str, value: float) -> Callable[[], float]:
        def once() -> float:
            order.append(name)
            return value
        return once

    values = interleave([side("a", 1.0), side("b", 2.0)], rounds=2, warmup=1)
    assert order == ["a", "b"] * 3 and values == [[1.0, 1.0], [2.0, 2.0]]


def test_row_verdicts_follow_the_numbers() -> None:
    a, b = Side("a", "", [10.0, 12.0, 11.0]), Side("b", "", [30.0, 32.0, 31.0])
    assert Row("r", "s", "m", "ms", a, b, Goal("ratio_max", 0.5, "")).verdict == "met"  # 11/31
    assert Row("r", "s", "m", "ms", b, a, Goal("ratio_max", 0.5, "")).verdict == "missed"
    assert Row("r", "s", "m", "ms", a, None, Goal("a_below", 11.0, "")).verdict == "missed"  # 11 is not < 11
    assert Row("r", "s", "m", "ms", a, b).verdict == "info"
    paired = Row("r", "s", "m", "ms", a, b).extra["paired_ratio"]  # 10/30, 12/32, 11/31
    assert paired["min"] == pytest.approx(1 / 3) and paired["max"] == pytest.approx(12 / 32)
    assert Row("r", "s", "m", "ms", a, None, Goal("ratio_max", 1.0, "")).verdict == "skipped"


def test_goals_are_judged_on_wall_and_cpu() -> None:
    # wall 11 vs 31 meets 0.5x; CPU 20 vs 30 does not: the row misses, and says which
    a = Side("a", "", [Timing(10.0, 19.0), Timing(12.0, 21.0), Timing(11.0, 20.0)])
    b = Side("b", "", [Timing(30.0, 29.0), Timing(32.0, 31.0), Timing(31.0, 30.0)])
    assert (a.samples, a.cpu_samples, a.cpu_median) == ([10.0, 12.0, 11.0], [19.0, 21.0, 20.0], 20.0)
    row = Row("r", "s", "m", "ms", a, b, Goal("ratio_max", 0.5, ""))
    assert (row.verdict, row.verdict_wall, row.verdict_cpu) == ("missed", "met", "missed")
    assert row.cpu_ratio == pytest.approx(20 / 30) and row.extra["paired_cpu_ratio"]["max"] == pytest.approx(21 / 31)
    assert Row("r", "s", "m", "ms", a, b, Goal("ratio_max", 0.7, "")).verdict == "met"
    # a CPU goal of its own: wall on A's median, CPU on the ratio
    own = Row("r", "s", "m", "ms", a, b, Goal("a_below", 12.0, ""), cpu_goal=Goal("ratio_below", 0.6, ""))
    assert (own.verdict_wall, own.verdict_cpu, own.verdict) == ("met", "missed", "missed")
    # sides without CPU figures are judged on wall time alone
    plain = Row("r", "s", "m", "ms", Side("a", "", [1.0]), Side("b", "", [4.0]), Goal("ratio_max", 0.5, ""))
    assert (plain.verdict, plain.verdict_cpu, plain.cpu_ratio) == ("met", "info", None)


def _series(ys: list[float], kind: str = "linear", value: float = 0.0) -> Series:
    return Series("s", "t", "x", "y", "ms", [Point(x, [y]) for x, y in zip([1, 2, 4, 8, 16], ys)],
                  Goal(kind, value, ""))


def test_series_tells_linear_from_quadratic() -> None:
    assert _series([3, 5, 9, 17, 33]).verdict == "met"
    assert _series([1, 4, 16, 64, 256]).verdict == "missed"


def test_series_flat_goal_measures_the_rise() -> None:
    assert _series([100, 100.5, 101, 101, 102], "flat", 0.10).verdict == "met"
    assert _series([100, 105, 115, 135, 175], "flat", 0.10).verdict == "missed"


def test_generated_repo_is_deterministic_and_clean(tmp_path: Path) -> None:
    files = inputs.write_repo(tmp_path / "a", 12)
    again = inputs.write_repo(tmp_path / "b", 12)
    assert [f.path.read_text() for f in files] == [f.path.read_text() for f in again]
    assert {f.target for f in files} == set(inputs.TARGETS)
    done = subprocess.run([*hvconf_command(), "check", "--werror", *(str(f.path) for f in files)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_scaling_inputs_build(tmp_path: Path) -> None:
    names = inputs.spapr_hcall_names(BENCH.parent / "targets")
    paths = [inputs.vcpus_def(tmp_path, 3), inputs.tce_def(tmp_path, 3), inputs.hcalls_def(tmp_path, names[:3]),
             inputs.includes_def(tmp_path, 40)]  # 40 > the 32-deep extends cap: includes must stay flat
    done = subprocess.run([*hvconf_command(), "build", "-o", str(tmp_path / "out"), *map(str, paths)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_size_inputs_check_clean_and_the_largest_fits_one_file(tmp_path: Path) -> None:
    from bench.suites.size import LARGEST
    from hvconf.syntax.loader import MAX_FILE_BYTES

    chain, vms = inputs.include_chain_def(tmp_path, 40), inputs.many_vms_def(tmp_path, 30)
    done = subprocess.run([*hvconf_command(), "check", "--werror", str(chain), str(vms)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(list(chain.parent.glob("c*.hv"))) == 40
    assert inputs.many_vms_def(tmp_path, LARGEST).stat().st_size <= MAX_FILE_BYTES


def test_compile_probe_times_every_mode(tmp_path: Path) -> None:
    probe = BENCH / "suites" / "compile_probe.py"
    vms = inputs.many_vms_def(tmp_path, 3)
    for mode in ([], ["--check"], ["--write", str(tmp_path)]):
        done = run([sys.executable, str(probe), *mode, "2", str(vms)], timeout=120)
        times = json.loads(done.stdout)
        keys = [str(vms), f"{vms}:rewrite"] if mode[:1] == ["--write"] else [str(vms)]
        assert sorted(times) == keys and all(len(v) == 2 and min(v) > 0 for v in times.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vms-3.hv"]  # written folders removed


@pytest.mark.kvm
@pytest.mark.skipif(not KVM or shutil.which("gcc") is None, reason="needs /dev/kvm and gcc")
def test_floor_runs_the_exit_loop_guest(tmp_path: Path) -> None:
    floor = tmp_path / "floor"
    subprocess.run(["gcc", "-O2", "-o", str(floor), str(BENCH / "floor" / "floor.c")], check=True)
    subprocess.run([*hvconf_command(), "build", str(BENCH / "exitloop.hv"), "-o", str(tmp_path)], check=True,
                   capture_output=True)
    sample = run([str(floor), str(tmp_path / "exitloop" / "guest.bin"), "0x7c00", "0x200000", "20"], timeout=30)
    us = floor_us_per_exit(sample)
    assert 0 < us < 1000
    assert f"exits={EXITS}".encode() in sample.stderr


@pytest.mark.kvm
@pytest.mark.skipif(not KVM or shutil.which("gcc") is None, reason="needs /dev/kvm and gcc")
def test_floor_watchdog_ends_a_spinning_guest(tmp_path: Path) -> None:
    floor, spin = tmp_path / "floor", tmp_path / "spin.bin"
    subprocess.run(["gcc", "-O2", "-o", str(floor), str(BENCH / "floor" / "floor.c")], check=True)
    spin.write_bytes(b"\xeb\xfe")  # jmp . : never exits to userspace
    with pytest.raises(MeasureError, match="exit status 3"):
        run([str(floor), str(spin), "0x7c00", "0x200000", "1"], timeout=10)


def test_import_probe_times_the_x86_family_in_wall_and_cpu() -> None:
    from bench.suites.launch import IMPORT_PROBE, probe_timing

    check = "; import sys; assert {'hvconf.kvm.run', 'hvconf.kvm.x86.exits', 'hvconf.kvm.x86.devices'} <= set(sys.modules)"
    timing = probe_timing(run([sys.executable, "-c", IMPORT_PROBE + check]))
    assert timing.wall > 0 and timing.cpu > 0


def test_launcher_summary_parses_and_checks_the_count() -> None:
    ok = run([sys.executable, "-c", f"import sys; sys.stderr.write('launch: x: guest halted after 2.0 s, {EXITS} exits')"])
    assert launcher_us_per_exit(ok) == pytest.approx(2e6 / EXITS)
    short = run([sys.executable, "-c", "import sys; sys.stderr.write('guest halted after 2.0 s, 5 exits')"])
    with pytest.raises(MeasureError, match="counted 5 exits"):
        launcher_us_per_exit(short)


def _hvconf_modules(importtime_stderr: str) -> set[str]:
    """The hvconf modules in `python -X importtime`'s report ("import time: self | cumulative | name")."""
    lines = importtime_stderr.splitlines()
    names = (line.rpartition("|")[2].strip() for line in lines if line.startswith("import time:"))
    return {name for name in names if name == "hvconf" or name.startswith("hvconf.")}


@pytest.mark.kvm
@pytest.mark.skipif(not KVM, reason="needs /dev/kvm")
def test_import_probe_loads_what_a_launch_loads(tmp_path: Path) -> None:
    # launch.import must time the runtime a launch of x86-hello really imports, family parts included
    # (they load once the plan is read, so importing launch and run alone under-counts).
    from bench.suites.launch import IMPORTS

    repo = BENCH.parent
    subprocess.run([sys.executable, "-m", "hvconf", "build", str(repo / "samples" / "x86-hello.hv"),
                    "-o", str(tmp_path)], check=True, capture_output=True)
    launch = subprocess.run([sys.executable, "-X", "importtime", str(tmp_path / "x86-hello" / "launch.py")],
                            capture_output=True, text=True, timeout=60)
    assert launch.returncode == 0, launch.stderr
    probe = subprocess.run([sys.executable, "-X", "importtime", "-c", IMPORTS], capture_output=True, text=True,
                           check=True)
    launched = _hvconf_modules(launch.stderr)
    assert "hvconf.kvm.x86.exits" in launched
    assert _hvconf_modules(probe.stderr) == launched
