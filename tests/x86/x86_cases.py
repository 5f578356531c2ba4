"""The x86 suite's cases: the definitions, how each becomes a payload case, what it runs.

Every case is an x86_64 definition compiled here by hvconf (its guest assembled with the host's
`as`) into its launcher, and run inside the emulated x86_64 host on kvm_amd as
`python3 launch.py --trace --timeout T`, the guest console and the launcher's stderr kept apart.
Definitions are the samples, the test definitions of tests/kvm (tests/data/guests), and a few
written here for what only a complete KVM can show. Used by conftest.py and the tests here.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hvconf import compiler

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SAMPLES = REPO / "samples"
DATA = REPO / "tests" / "data" / "guests"
GUESTS = REPO / "guests" / "x86"
TRACE_MARK = "@@TRACE"

# A definition written for this suite (standalone: it is written to a temporary folder).
DEFINITION = """format 1
vm {name} {{
    arch    x86_64
    memory  {memory}
    vcpus   {vcpus}
    console serial
{body}    guest   "{guest}" mode {mode}{at}
}}
"""


def definition(name: str, guest: str, mode: str, *, vcpus: int = 1, memory: str = "4M", at: str = "",
               body: str = "") -> str:
    """A definition of `guest` (a file of guests/x86/, copied beside it: a definition reads its own project)."""
    return DEFINITION.format(name=name, memory=memory, vcpus=vcpus, body=body, guest=guest, mode=mode,
                             at=f" at {at}" if at else "")


GATED = """    irqchip kernel
    pv_features { pv_unhalt  hc_map_gpa_range }
    hcalls {
        enforce
        enable KVM_HC_KICK_CPU
        exit   KVM_HC_MAP_GPA_RANGE
    }
"""
KICK = """    irqchip kernel
    pv_features { pv_unhalt }
    hcalls {
        enforce
        enable KVM_HC_KICK_CPU
    }
"""
NO_KICK = """    irqchip kernel
    pv_features { pv_eoi }
    hcalls {
        enforce
        disable KVM_HC_KICK_CPU
    }
"""
IPI = """    irqchip kernel
    pv_features { pv_send_ipi  pv_sched_yield }
    hcalls {
        enforce
        enable KVM_HC_SEND_IPI KVM_HC_SCHED_YIELD
    }
"""


LINUX_SMP = (SAMPLES / "x86-linux.hv").read_text().replace("vcpus   1", "vcpus   2")
assert "vcpus   2" in LINUX_SMP, "samples/x86-linux.hv: its `vcpus` line changed"
LINUX_TIMEOUT = 180  # s: the launcher's watchdog; a boot takes 10-30 s in the host
LINUX = f"""#!/bin/sh
# pseudo-terminals for pty_run.py: the host's /init mounts devtmpfs, not devpts
[ -d /dev/pts ] || mkdir /dev/pts
[ -e /dev/pts/ptmx ] || mount -t devpts devpts /dev/pts || exit 91
python3 linux_initrd.py --echo initrd.img || exit 90
python3 pty_run.py stderr.txt python3 launch.py --kernel /payload/host-kernel --initrd initrd.img \\
    --timeout {LINUX_TIMEOUT} --trace-file trace-full.txt
rc=$?
echo {TRACE_MARK}
cat stderr.txt
grep -E '^trace: (linux:|x86-linux: status)' trace-full.txt
exit $rc
"""


@dataclass(frozen=True)
class Case:
    name: str
    source: Path | None = None  # a definition in the repository
    text: str | None = None  # or one written here
    timeout: float = 30  # the launcher's --timeout (the watchdog), in seconds
    run: str = ""  # a command instead of a launcher
    script: str = ""  # or the case's whole `run` file, verbatim
    limit: int | None = None  # init's bound for the case (cases/NAME/timeout), in seconds
    files: tuple[Path, ...] = ()  # copied into the case's folder
    host_kernel: bool = False  # the payload carries the host's kernel at /payload/host-kernel

    @property
    def command(self) -> str:
        return self.run or f"python3 launch.py --trace --timeout {self.timeout:g} 2> trace.txt"


CASES: tuple[Case, ...] = (
    Case("x86-hello", SAMPLES / "x86-hello.hv"),
    Case("x86-pvspinlock", SAMPLES / "x86-pvspinlock.hv"),
    Case("cpuid-none", DATA / "cpuid-none.hv"),
    Case("cpuid-unhalt", DATA / "cpuid-unhalt.hv"),
    Case("cpuid-three", DATA / "cpuid-three.hv"),
    Case("smp2", DATA / "smp2.hv"),
    Case("smp4", text=definition("smp4", "smp.S", "prot32", vcpus=4)),
    # the vmcall that never returns on the development host: here KVM patches it and it returns
    Case("vmcall", DATA / "vmcall.hv"),
    # the vmcall that never returns on any AMD KVM: a non-zero CS base (the watchdog ends it)
    Case("vmcall-segment", text=definition("vmcall-segment", "vmcall-segment.S", "real", memory="2M",
                                           at="0x7c00"), timeout=3),
    # the hypercalls KVM serves itself, gated or not by the declared PV features, and the one it forwards
    Case("hypercalls-plain", text=definition("hypercalls-plain", "hypercalls.S", "long64")),
    Case("hypercalls-gated", text=definition("hypercalls-gated", "hypercalls.S", "long64", vcpus=2, body=GATED)),
    Case("hypercalls-ipi", text=definition("hypercalls-ipi", "hypercalls.S", "long64", body=IPI)),
    # a vCPU halted with interrupts off, woken by the other's KVM_HC_KICK_CPU; and the same with the kick gated off
    Case("kick", text=definition("kick", "kick.S", "prot32", vcpus=2, memory="64M", at="0x10000", body=KICK)),
    Case("kick-gated", text=definition("kick-gated", "kick.S", "prot32", vcpus=2, memory="64M", at="0x10000",
                                       body=NO_KICK), timeout=3),
    Case("probe", run="python3 -m hvconf.kvm.probe"),
    # an unmodified Linux (the host's own Debian kernel) booted by the sample's launcher on a terminal
    # (pty_run.py), with a busybox initramfs made in the host (linux_initrd.py); its /init prints what the
    # test asserts, reads the line typed at the terminal and prints it back, then reboots. The sample's VM
    # with 2 vCPUs: Linux finds the second in the launcher's MP table and wakes it (INIT, SIPI)
    Case("linux", text=LINUX_SMP, script=LINUX, files=(HERE / "linux_initrd.py", HERE / "pty_run.py",
                                                       REPO / "tests" / "hosts" / "cpio.py"),
         host_kernel=True, limit=240),
    # the harness itself (tests/hosts/init): a status, a case that overruns its bound with an orphan,
    # and the next case, which must not see that orphan
    Case("host-1-status", script="#!/bin/sh\necho hi\nexit 3\n"),
    Case("host-2-overrun", script="#!/bin/sh\nsleep 1000 &\necho sleeping\nsleep 1000\n", limit=2),
    Case("host-3-after", script="#!/bin/sh\nps | grep -c '[s]leep 1000'\nprintf %s \"$PYTHONPATH\"\n"),
)


@dataclass
class Built:
    """A case as compiled: its payload folder (launch.py, plan.json, guest.bin...), definition and plan."""

    case: Case
    folder: Path
    source: Path | None
    plan: dict[str, Any] = field(default_factory=dict)
    codes: tuple[str, ...] = ()  # the codes of the build's diagnostics (warnings: it has no error)


def build_case(case: Case, into: Path, src: Path) -> Built:
    """Compile `case` into payload case folder `into` (outputs + an executable `run`)."""
    into.mkdir(parents=True)
    source = case.source
    if case.text is not None:
        source = src / f"{case.name}.hv"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(case.text)
        for guest in [*GUESTS.glob("*.S"), *GUESTS.glob("*.inc")]:  # sources and what they include
            shutil.copyfile(guest, src / guest.name)
    built = Built(case, into, source)
    if source is not None:
        result = compiler.build([source])
        errors = [d for d in result.report.diagnostics if d.severity.value == "error"]
        assert not errors, f"{case.name}: {[d.message for d in errors]}"
        built.codes = tuple(d.code for d in result.report.diagnostics)
        (vm,) = result.built
        for name, data in vm.files.items():
            (into / name).write_bytes(data)
        built.plan = json.loads(vm.files["plan.json"])
    run = into / "run"
    run.write_text(case.script or f"#!/bin/sh\n{case.command}\nrc=$?\necho {TRACE_MARK}\ncat trace.txt 2> /dev/null\n"
                                  "exit $rc\n")
    run.chmod(0o755)
    if case.limit is not None:
        (into / "timeout").write_text(f"{case.limit}\n")
    for file in case.files:
        shutil.copyfile(file, into / file.name)
    if case.host_kernel:
        (into.parent.parent / "host-kernel").write_bytes(b"")  # tests/hosts/emulated.py puts the kernel there
    return built


def split(output: str) -> tuple[str, str]:
    """A case's output as (guest console / stdout, launcher stderr and trace)."""
    console, _, trace = output.partition(f"{TRACE_MARK}\n")
    return console, trace
