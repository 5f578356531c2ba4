"""End-to-end tests of the generated launch.py.

For every sample: it compiles, its embedded PLAN equals plan.json, and
`--dry-run` (run from another folder) prints plan.json's steps one for one.
On this x86_64 host a PowerPC or s390 launcher refuses with one line and
status 3 before opening /dev/kvm (tests/data/open-audit records opens).
Hostile strings in definitions never become code, and VM names cannot
leave the output folder. Subprocesses are bounded by `timeout=`.
"""

from __future__ import annotations

import ast
import json
import os
import platform
import py_compile
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hvconf import compiler
from hvconf.emit.output import write_tree

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
SAMPLE_NAMES = sorted(p.stem for p in SAMPLES.glob("*.hv"))
AUDIT = REPO / "tests" / "data" / "open-audit"
HELLO_S = REPO / "guests" / "x86" / "hello.S"
FOREIGN = ["e500", "pseries", "pseries-pr", "s390x"]  # samples this x86_64 host cannot run
TIMEOUT = 30

# <fd>  <ioctl>  0x<request>  <compact sorted-keys JSON args>  # <source>   (hvconf/kvm/dryrun.py)
DRY_RUN_LINE = re.compile(r"^(system|vm|vcpu:\d+)  ([A-Z0-9_]+)  0x([0-9a-f]{8})  (\{.*\})  # (.*)$")


def run_launcher(launcher: Path, *args: str, cwd: Path, log: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if log is not None:  # record opens of /dev/kvm in `log`
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(AUDIT), env.get("PYTHONPATH")]))
        env["HVCONF_TEST_OPEN_LOG"] = str(log)
    return subprocess.run([sys.executable, str(launcher), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)


def dry_run_text(plan: dict) -> str:
    """What `--dry-run` must print for `plan`, written from the documented format."""
    return "".join(f"{s['fd']}  {s['ioctl']}  0x{s['request']:08x}  "
                   f"{json.dumps(s['args'], sort_keys=True, separators=(',', ':'))}  # {s['source']}\n"
                   for s in plan["steps"])


def embedded_plan(launcher: Path) -> object:
    """The PLAN literal, read without executing anything."""
    tree = ast.parse(launcher.read_text(), str(launcher))
    values = [node.value for node in tree.body
              if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["PLAN"]]
    assert len(values) == 1, "launch.py should assign PLAN exactly once at top level"
    return ast.literal_eval(values[0])


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every sample built and written, as `hvconf build samples/*.hv` would."""
    result = compiler.build(sorted(SAMPLES.glob("*.hv")))
    assert not result.report.has_errors, [str(d.message) for d in result.report.errors]
    folder = tmp_path_factory.mktemp("launchers")
    write_tree(folder, {b.vm.name: b.files for b in result.built})
    return folder


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    (tmp_path / "cwd").mkdir()
    return tmp_path / "cwd"


@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_launcher_compiles_and_embeds_plan_json(out: Path, sample: str, tmp_path: Path) -> None:
    launcher = out / sample / "launch.py"
    plan = json.loads((out / sample / "plan.json").read_text())
    py_compile.compile(str(launcher), cfile=str(tmp_path / "launch.pyc"), doraise=True)
    assert embedded_plan(launcher) == plan
    namespace: dict[str, object] = {"__name__": "not_main", "__file__": str(launcher)}
    exec(compile(launcher.read_text(), str(launcher), "exec"), namespace)  # main() is not called
    assert namespace["PLAN"] == plan
    assert launcher.stat().st_mode & 0o111, "launch.py should be executable"


@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_dry_run_prints_plan_json_steps_one_for_one(out: Path, sample: str, elsewhere: Path) -> None:
    plan = json.loads((out / sample / "plan.json").read_text())
    done = run_launcher(out / sample / "launch.py", "--dry-run", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(plan["steps"]) > 0
    for line, step in zip(lines, plan["steps"]):
        m = DRY_RUN_LINE.match(line)
        assert m, f"not a dry-run line: {line!r}"
        fd, ioctl, request, args, source = m.groups()
        assert (fd, ioctl, int(request, 16), json.loads(args), source) == (
            step["fd"], step["ioctl"], step["request"], step["args"], step["source"])
    assert done.stdout == dry_run_text(plan)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the foreign samples are foreign to an x86_64 host")
@pytest.mark.parametrize("sample", FOREIGN)
def test_foreign_launcher_refuses_in_one_line_before_opening_kvm(out: Path, sample: str, elsewhere: Path) -> None:
    plan = json.loads((out / sample / "plan.json").read_text())
    log = elsewhere / "opens.log"
    done = run_launcher(out / sample / "launch.py", cwd=elsewhere, log=log)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert done.returncode == 3, done.stderr
    line = lines[0]
    assert line.startswith("launch: error: ")
    names_arch = plan["requires"]["host_arch"] in line and platform.machine() in line
    names_unmerged = any(name in line for name in plan["requires"]["unmerged"])
    assert names_arch or names_unmerged, f"the refusal should name the mismatch: {line}"
    assert done.stdout == ""
    assert not log.exists(), f"/dev/kvm was opened: {log.read_text()}"


@pytest.mark.kvm
def test_multi_vcpu_x86_sample_runs_or_is_refused_as_a_host_limit(out: Path, elsewhere: Path) -> None:
    # x86-pvspinlock has two vCPUs. A runtime that runs one vCPU per VM may refuse
    # it (status 3, one line), but a plan hvconf built is never a "bad plan" (2).
    done = run_launcher(out / "x86-pvspinlock" / "launch.py", "--timeout", "2", cwd=elsewhere)
    assert "Traceback" not in done.stderr
    assert done.returncode in (0, 3), done.stderr
    if done.returncode == 3:
        assert len(done.stderr.splitlines()) == 1 and "vCPU" in done.stderr, done.stderr


def test_the_open_audit_helper_sees_opens(elsewhere: Path) -> None:
    # Without this, "no /dev/kvm open was logged" could be a broken helper.
    log = elsewhere / "opens.log"
    env = {**os.environ, "PYTHONPATH": str(AUDIT), "HVCONF_TEST_OPEN_LOG": str(log),
           "HVCONF_TEST_OPEN_WATCH": "/dev/null"}
    subprocess.run([sys.executable, "-c", "import os; os.close(os.open('/dev/null', os.O_RDONLY))"],
                   env=env, cwd=elsewhere, timeout=TIMEOUT, check=True)
    assert log.read_text().split()[1:] == ["/dev/null"]


# --- injection ------------------------------------------------------------------------------

PAYLOADS = {
    "dquote": 'a"b',
    "triple-single": "a'''b",
    "triple-double": 'a"""b',
    "backslashes": "a\\b\\\\c\\",
    "newline": "a\nb\tc",
    "jinja-expr": "{{ 7*7 }}",
    "jinja-raw": "{% raw %}x{% endraw %}{# c #}",
    "python": '"); import os; os.system("touch SENTINEL")#',
    "python-single": "'); import os; os.system('touch SENTINEL')#",
    # device-tree property names allow only [A-Za-z0-9,._+?#-]: the most hostile of those
    "dt-legal": "ibm,x#y?z+w.v-u_t",
}
PAYLOADS["all"] = "".join(PAYLOADS.values())


def hv_string(text: str) -> str:
    """`text` as a .hv string literal."""
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}
    return '"' + "".join(escapes.get(c, c) for c in text) + '"'


def x86_guest(folder: Path, name: str) -> str:
    shutil.copy(HELLO_S, folder / name)
    return name


# Each vector: (definition using the payload P, where P must appear when built).
def vector_kernel(folder: Path, p: str) -> tuple[str, str]:
    return (f"format 1\nvm v {{\n    arch ppc64le\n    kvm book3s_hv\n    memory 256M\n    vcpus 1\n"
            f"    cap KVM_CAP_PPC_PAPR on vcpus\n    kernel {hv_string(p)}\n}}\n", "plan")


def vector_cmdline(folder: Path, p: str) -> tuple[str, str]:
    return (f"format 1\nvm v {{\n    arch ppc64le\n    kvm book3s_hv\n    memory 256M\n    vcpus 1\n"
            f"    cap KVM_CAP_PPC_PAPR on vcpus\n    cmdline {hv_string(p)}\n}}\n", "dtb")


def vector_rtas(folder: Path, p: str) -> tuple[str, str]:
    return (f"format 1\nvm v {{\n    arch ppc64le\n    kvm book3s_hv\n    memory 256M\n    vcpus 1\n"
            f"    cap KVM_CAP_PPC_PAPR on vcpus\n    rtas {{ token {hv_string(p)} 0x2010 }}\n}}\n", "plan")


def vector_guest(folder: Path, p: str) -> tuple[str, str]:
    name = x86_guest(folder, p + ".S")
    return (f"format 1\nvm v {{\n    arch x86_64\n    memory 2M\n    vcpus 1\n    console serial\n"
            f"    guest {hv_string(name)} mode real at 0x7c00\n}}\n", "manifest")


def vector_include(folder: Path, p: str) -> tuple[str, str]:
    (folder / (p + ".hv")).write_text("format 1\nabstract vm base {\n    arch x86_64\n    console serial\n}\n")
    x86_guest(folder, "g.S")
    return (f"format 1\ninclude {hv_string(p + '.hv')}\nvm v extends base {{\n    memory 2M\n    vcpus 1\n"
            f"    guest \"g.S\" mode real at 0x7c00\n}}\n", "plan")


VECTORS = {"kernel": vector_kernel, "cmdline": vector_cmdline, "rtas": vector_rtas,
           "guest-path": vector_guest, "include-path": vector_include}


def build_hostile(folder: Path, vector: str, payload: str) -> tuple[compiler.Result, str]:
    text, where = VECTORS[vector](folder, payload)
    root = folder / "v.hv"
    root.write_text(text)
    return compiler.build([root]), where


def assert_payload_intact(built: compiler.Built, where: str, payload: str) -> None:
    if where == "plan":
        assert any(payload in s for s in _strings(json.loads(built.files["plan.json"]))), "not in plan.json"
    elif where == "manifest":
        paths = [i["path"] for i in json.loads(built.files["manifest.json"])["inputs"]]
        assert payload + ".S" in paths
    else:
        import libfdt

        fdt = libfdt.Fdt(built.files["v.dtb"])
        bootargs = fdt.getprop(fdt.path_offset("/chosen"), "bootargs")
        assert bytes(bootargs) == payload.encode() + b"\0"


def _strings(value: object) -> list[str]:
    """Every string in a JSON value, dict keys included."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [*_strings(k), *_strings(v)]]  # keys too: RTAS names
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
@pytest.mark.parametrize("vector", sorted(VECTORS))
def test_hostile_strings_stay_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vector: str,
                                   payload: str) -> None:
    monkeypatch.chdir(tmp_path)  # where `touch SENTINEL` would land
    result, where = build_hostile(tmp_path, vector, PAYLOADS[payload])
    if result.report.has_errors:
        # Only RTAS token names have a reason to refuse (they become /rtas property
        # names); a refusal must be a diagnostic with a place.
        assert vector == "rtas" and payload != "dt-legal", [f"{d.code}: {d.message}" for d in result.report.errors]
        assert result.built == []
        assert all(d.span is not None and d.code for d in result.report.errors)
        return
    (built,) = result.built
    assert_payload_intact(built, where, PAYLOADS[payload])
    launcher = built.files["launch.py"].decode()
    code = compile(launcher, "launch.py", "exec")
    namespace: dict[str, object] = {"__name__": "not_main"}
    exec(code, namespace)
    assert namespace["PLAN"] == json.loads(built.files["plan.json"]) == built.plan
    assert not (tmp_path / "SENTINEL").exists()


@pytest.mark.parametrize("vector", sorted(VECTORS))
def test_hostile_launcher_dry_runs_without_running_the_payload(tmp_path: Path, vector: str) -> None:
    payload = PAYLOADS["dt-legal" if vector == "rtas" else "all"]  # RTAS names refuse the rest
    result, where = build_hostile(tmp_path, vector, payload)
    assert not result.report.has_errors, [f"{d.code}: {d.message}" for d in result.report.errors]
    assert_payload_intact(result.built[0], where, payload)
    write_tree(tmp_path / "out", {b.vm.name: b.files for b in result.built})
    launcher = tmp_path / "out" / "v" / "launch.py"
    py_compile.compile(str(launcher), cfile=str(tmp_path / "launch.pyc"), doraise=True)
    done = run_launcher(launcher, "--dry-run", cwd=tmp_path)
    assert "Traceback" not in done.stderr
    assert done.returncode == 0, done.stderr
    assert done.stdout == dry_run_text(json.loads((tmp_path / "out" / "v" / "plan.json").read_text()))
    assert not (tmp_path / "SENTINEL").exists()


@pytest.mark.parametrize("vector", ["rtas", "kernel"])
def test_hostile_cli_build_has_no_traceback(tmp_path: Path, vector: str) -> None:
    # rtas is refused with an error, kernel warns (kernel-missing) quoting the payload:
    # both diagnostics go through the renderer with the hostile text in them.
    text, _ = VECTORS[vector](tmp_path, PAYLOADS["all"])
    (tmp_path / "v.hv").write_text(text)
    done = subprocess.run([sys.executable, "-m", "hvconf", "build", "v.hv", "-o", "out"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == (1 if vector == "rtas" else 0), done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(r"^v\.hv:\d+:\d+: (error|warning)\[[a-z0-9-]+\]: ", done.stderr, re.MULTILINE), done.stderr
    assert "\x1b" not in done.stderr and "{{ 7*7 }}" in done.stderr
    assert not (tmp_path / "SENTINEL").exists()


@pytest.mark.parametrize("name", ["../x", "a/b", "/abs", "x/../../y", ".hidden", "9lives"])
def test_vm_names_that_could_leave_the_output_folder_are_syntax_errors(tmp_path: Path, name: str) -> None:
    root = tmp_path / "n.hv"
    root.write_text(f"format 1\nvm {name} {{\n    arch x86_64\n    memory 2M\n    vcpus 1\n}}\n")
    result = compiler.build([root])
    assert result.built == []
    assert [d.code for d in result.report.errors][:1] == ["syntax-error"]
    assert result.report.errors[0].span.line == 2
