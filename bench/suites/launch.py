"""Measurement 1: launch-to-halt of the generated x86-hello launcher against the C floor and QEMU.

All sides run interleaved in one loop: `python launch.py` (samples/x86-hello.hv
built by hvconf), the C floor on the same guest.bin, QEMU `-M microvm` and
`-M pc` on a 16-byte BIOS guest (to process exit through isa-debug-exit),
`python -c pass`, and a child that times its own import of the runtime.
Skips (with the reason) what this host cannot run; never substitutes.
"""

from __future__ import annotations

from pathlib import Path

from bench.context import Context
from bench.measure import Sample, Timing, interleave
from bench.measurements import Goal, Row, Series, Side, not_measured
from bench.suites.common import Runner, command_text, runner

SUITE = "launch"
HELLO = b"hello from hvconf guest"
# What a real run of x86-hello's launch.py imports: launch (main imports run lazily), run, and the
# x86 family's parts that run.py resolves through hvconf/kvm/families.py once it has read the plan
# (hypercalls.py only for a plan that routes hypercalls). bench/test_bench.py holds it to a real launch.
IMPORTS = ("import hvconf.kvm.launch, hvconf.kvm.run; from hvconf.kvm.families import part; "
           "[part('x86_64', name) for name in ('steps', 'devices', 'exits', 'host')]")
# Prints wall and CPU (process_time: user + sys of this process) ms around the imports.
IMPORT_PROBE = ("import time; t, c = time.perf_counter(), time.process_time(); " + IMPORTS + "; "
                "print((time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000)")
GOAL_QEMU = Goal("ratio_max", 0.5, "≤ 0.5x QEMU microvm")
GOAL_FLOOR = Goal("ratio_max", 15.0, "≤ 15x the C floor")
GOAL_IMPORT = Goal("a_below", 10.0, "< 10 ms")


def qemu_command(machine: str, bios: Path) -> list[str]:
    return ["qemu-system-x86_64", "-M", machine, "-accel", "kvm", "-m", "2M", "-nodefaults", "-no-user-config",
            "-display", "none", "-serial", "stdio", "-no-reboot",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-bios", str(bios)]


def probe_timing(sample: Sample) -> Timing:
    """The import probe's own wall and CPU ms, as it printed them."""
    wall, cpu = sample.stdout.split()
    return Timing(float(wall), float(cpu))


def run(ctx: Context) -> list[Row | Series]:
    sides: dict[str, tuple[str, list[str], Runner]] = {}

    def add(key: str, label: str, cmd: list[str], r: Runner) -> None:
        sides[key] = (label, cmd, r)

    kvm_why = ctx.why_missing("kvm", "guests")
    if kvm_why is None:
        assert ctx.hello_dir is not None
        cmd = [ctx.python, str(ctx.hello_dir / "launch.py")]
        add("launcher", "hvconf launch.py", cmd, runner(cmd, must_print=HELLO))
        floor_why = ctx.why_missing("floor")
        if floor_why is None:
            assert ctx.floor is not None
            cmd = [str(ctx.floor), str(ctx.hello_dir / "guest.bin"), "0x7c00", "0x200000", "10"]
            add("floor", "C floor", cmd, runner(cmd, must_print=HELLO))
        qemu_why = ctx.why_missing("qemu", "qemu_bios")
        if qemu_why is None:
            assert ctx.qemu_bios is not None
            for machine in ("microvm", "pc"):
                cmd = qemu_command(machine, ctx.qemu_bios)
                # isa-debug-exit with 0 written: QEMU exits with (0 << 1) | 1
                add(f"qemu-{machine}", f"QEMU -M {machine}", cmd, runner(cmd, expect=(1,), must_print=b"A"))
    add("python", "python -c pass", [ctx.python, "-c", "pass"], runner([ctx.python, "-c", "pass"]))
    probe = [ctx.python, "-c", IMPORT_PROBE]
    add("import", "import hvconf.kvm.{launch,run} + the x86 family", probe, runner(probe, value=probe_timing))

    ctx.log(f"launch: {len(sides)} sides interleaved, {ctx.counts.launch} rounds")
    keys = list(sides)
    values = dict(zip(keys, interleave([sides[k][2] for k in keys], ctx.counts.launch, warmup=2)))
    side = {k: Side(sides[k][0], command_text(sides[k][1]), values[k]) for k in keys}

    rows: list[Row | Series] = []
    title = "launch-to-halt, x86-hello"
    if "launcher" not in side:
        why = kvm_why or "no launcher"
        rows += [not_measured("launch.vs_floor", SUITE, f"{title}: launcher vs C floor", "ms", GOAL_FLOOR, why),
                 not_measured("launch.vs_qemu", SUITE, f"{title}: launcher vs QEMU microvm", "ms", GOAL_QEMU, why)]
    else:
        for key, goal, what in (("floor", GOAL_FLOOR, "C floor"), ("qemu-microvm", GOAL_QEMU, "QEMU microvm")):
            rid = "launch.vs_floor" if key == "floor" else "launch.vs_qemu"
            if key in side:
                rows.append(Row(rid, SUITE, f"{title}: launcher vs {what}", "ms", side["launcher"], side[key], goal))
            else:
                reason = ctx.why_missing("floor") if key == "floor" else ctx.why_missing("qemu", "qemu_bios")
                rows.append(not_measured(rid, SUITE, f"{title}: launcher vs {what}", "ms", goal, reason or "?"))
        if "qemu-pc" in side:
            rows.append(Row("launch.vs_qemu_pc", SUITE, f"{title}: launcher vs QEMU -M pc", "ms",
                            side["launcher"], side["qemu-pc"]))
        rows.append(Row("launch.vs_python", SUITE, f"{title}: launcher vs `python -c pass`", "ms",
                        side["launcher"], side["python"],
                        note="the interpreter's own start-up, the part no Python launcher can shed"))
        if "floor" in side and "qemu-microvm" in side:
            rows.append(Row("launch.floor_vs_qemu", SUITE, "launch-to-halt: C floor vs QEMU microvm", "ms",
                            side["floor"], side["qemu-microvm"],
                            note="the floor runs hello.S (49 exits), QEMU a 16-byte BIOS guest (2 exits)"))
    rows.append(Row("launch.import", SUITE, "import of the runtime a real launch loads (hvconf.kvm.launch, .run "
                    "and the x86 family's parts)", "ms", side["import"], None, GOAL_IMPORT,
                    note="timed inside a fresh interpreter with perf_counter and process_time around the imports"))
    return rows
