"""Outputs are never half-written: builds killed with SIGKILL at many moments,
builds failing mid-write, and the leftovers a killed build can leave.

A `sitecustomize` on PYTHONPATH (no LD_PRELOAD) slows hvconf.emit.output
down (a sleep after every fsync and rename, around every folder swap and
around the syncfs) so kills land inside the write; with the exchange
disabled, the old two-rename swap fails this test. After every kill each
`out/<vm>/` must hash exactly like the complete old output or the complete
new one; the next build removes what the killed one left. Both ways of
making the files durable are killed and failed: an fsync per file and
folder (a build of few files), and one syncfs for all of them (many files;
HVCONF_TEST_SYNCFS_FROM=1 puts the four samples there). The failures are
injected (ENOSPC from an fsync, EIO from the syncfs): no failing disk here.
2 × (KILL_POINTS_CLI + KILL_POINTS_WRITE) kill points.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hvconf import compiler
from hvconf.emit import output
from hvconf.emit.output import write_tree

REPO = Path(__file__).resolve().parent.parent
SAMPLES = ("x86-hello", "pseries", "s390x", "e500")
# old -> new: each sample's memory changes, so plan.json, launch.py, the manifest and DTBs differ.
EDITS = {"x86-hello": ("memory  2M", "memory  4M"), "pseries": ("memory 4G", "memory 8G"),
         "s390x": ("memory 1G", "memory 2G"), "e500": ("memory 256M", "memory 512M")}
KILL_POINTS_CLI = 8  # `hvconf build` killed anywhere between start and exit
KILL_POINTS_WRITE = 24  # a process that only writes, killed inside the write
DELAY = 0.02  # seconds slept after each fsync and around each swap

SITECUSTOMIZE = '''
import os, time
_delay = float(os.environ.get("HVCONF_TEST_WRITE_DELAY", "0"))
_fail_at = int(os.environ.get("HVCONF_TEST_FAIL_FSYNC", "0"))
_syncfs_errno = int(os.environ.get("HVCONF_TEST_SYNCFS_ERRNO", "0"))
_log = os.environ.get("HVCONF_TEST_WRITE_LOG")
_calls = os.environ.get("HVCONF_TEST_SYNC_LOG")
if _delay or _fail_at or _syncfs_errno or _calls:
    import hvconf.emit.output as _out
    _fsync, _rename, _install, _write_tree, _count = os.fsync, os.rename, _out._install, _out.write_tree, [0]
    _syncfs = _out._syncfs_call

    def _note(what):
        if _calls:
            open(_calls, "a").write(what + "\\n")

    def _slow_syncfs(fd):  # the syncfs path's kill points: before and after it
        _note("syncfs")
        time.sleep(_delay * 3)
        if _syncfs_errno:
            raise OSError(_syncfs_errno, os.strerror(_syncfs_errno))
        _syncfs(fd)
        time.sleep(_delay * 3)

    def _slow_rename(*args):  # widens the window between two renames
        _rename(*args)
        time.sleep(_delay)

    def _slow_fsync(fd):
        _note("fsync")
        _count[0] += 1
        if _count[0] == _fail_at:
            raise OSError(28, "No space left on device")
        _fsync(fd)
        time.sleep(_delay)

    def _slow_install(*args):
        _note("swap")
        time.sleep(_delay)
        _install(*args)
        time.sleep(_delay)

    def _logged_write_tree(*args):
        if _log:
            open(_log, "a").write(f"start {time.time()}\\n")
        try:
            return _write_tree(*args)
        finally:
            if _log:
                open(_log, "a").write(f"end {time.time()}\\n")

    os.fsync, os.rename = _slow_fsync, _slow_rename
    _out._install, _out.write_tree, _out._syncfs_call = _slow_install, _logged_write_tree, _slow_syncfs
'''

# How the files are made durable: HVCONF_TEST_SYNCFS_FROM (test-only, hvconf/emit/output.py)
# moves the threshold of files from which one syncfs replaces the fsyncs.
MODES = {"fsync": {"HVCONF_TEST_SYNCFS_FROM": "1000000"}, "syncfs": {"HVCONF_TEST_SYNCFS_FROM": "1"}}

WRITER = "import pickle, sys; from pathlib import Path; from hvconf.emit.output import write_tree; " \
         "write_tree(Path(sys.argv[1]), pickle.load(open(sys.argv[2], 'rb')))"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def folder_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256(p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


def vm_folders(out: Path) -> dict[str, dict[str, str]]:
    return {p.name: folder_hashes(p) for p in sorted(out.iterdir()) if not p.name.startswith(".")}


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Two versions of four samples, their outputs computed in-process, and a sitecustomize."""
    root = tmp_path_factory.mktemp("crash")
    shutil.copytree(REPO / "samples", root / "old" / "samples")
    shutil.copytree(REPO / "guests", root / "old" / "guests")
    (root / "old" / ".git").mkdir()  # a repository: the samples may read ../guests
    shutil.copytree(root / "old", root / "new")
    for name, (before, after) in EDITS.items():
        path = root / "new" / "samples" / f"{name}.hv"
        text = path.read_text()
        assert before in text, f"{name}.hv no longer says {before!r}"
        path.write_text(text.replace(before, after))
    results = {}
    for version in ("old", "new"):
        built = compiler.build([root / version / "samples" / f"{s}.hv" for s in SAMPLES])
        assert not built.report.has_errors, [d.message for d in built.report.errors]
        results[version] = {b.vm.name: b.files for b in built.built}
        (root / f"{version}.pickle").write_bytes(pickle.dumps(results[version]))
    expected = {v: {vm: {f: sha256(blob) for f, blob in files.items()} for vm, files in r.items()}
                for v, r in results.items()}
    for vm in SAMPLES:
        assert expected["old"][vm] != expected["new"][vm], f"{vm}: the edit changes nothing"
    site = root / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {"root": root, "expected": expected, "site": site}


def _env(project: dict[str, object], **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(project["site"]),
                                                                     os.environ.get("PYTHONPATH")]))}
    return {**env, **extra}


def _fresh_old_output(project: dict[str, object], out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    write_tree(out, pickle.loads((project["root"] / "old.pickle").read_bytes()))  # type: ignore[operator]


def _assert_old_or_new(project: dict[str, object], out: Path, when: str) -> str:
    expected = project["expected"]
    found = vm_folders(out)
    assert sorted(found) == sorted(SAMPLES), f"{when}: VM folders {sorted(found)}"
    states = []
    for vm, hashes in found.items():
        if hashes == expected["old"][vm]:  # type: ignore[index]
            states.append("old")
        elif hashes == expected["new"][vm]:  # type: ignore[index]
            states.append("new")
        else:
            pytest.fail(f"{when}: out/{vm}/ is neither the old nor the new output: {sorted(hashes)}")
    return "".join(s[0] for s in states)


def _kill_at(command: list[str], env: dict[str, str], cwd: Path, seconds: float) -> int | None:
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=seconds)
        return proc.returncode  # finished before the kill point
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        return None


def _kill_inside_the_write(command: list[str], env: dict[str, str], cwd: Path, log: Path, offset: float) -> None:
    """Kill `offset` seconds after the write began: synchronised on the write's own start
    mark, so the kill lands inside it however long compiling took on this run."""
    log.unlink(missing_ok=True)
    proc = subprocess.Popen(command, env={**env, "HVCONF_TEST_WRITE_LOG": str(log)}, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (log.exists() and "start" in log.read_text()):
        assert proc.poll() is None, "the build ended without starting its write"
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the build never started its write")
        time.sleep(0.002)
    time.sleep(offset)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _kill_after_swaps(command: list[str], env: dict[str, str], cwd: Path, log: Path, swaps: int) -> None:
    """Kill the writer as soon as it has noted its `swaps`-th folder swap (the sitecustomize
    notes each one before making it, then sleeps DELAY on both sides of it)."""
    log.unlink(missing_ok=True)
    proc = subprocess.Popen(command, env={**env, "HVCONF_TEST_SYNC_LOG": str(log)}, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _syncs(log).count("swap") < swaps:
        assert proc.poll() is None, f"the write ended before swap {swaps}"
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the write never reached swap {swaps}")
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _timed_run(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> tuple[float, float, float]:
    """(write start, write end, exit), seconds after spawning, of one unkilled run."""
    log.unlink(missing_ok=True)
    start = time.time()
    subprocess.run(command, env={**env, "HVCONF_TEST_WRITE_LOG": str(log)}, cwd=cwd, check=True, timeout=120,
                   stdout=subprocess.DEVNULL)
    end = time.time() - start
    marks = dict(line.split() for line in log.read_text().splitlines())
    return float(marks["start"]) - start, float(marks["end"]) - start, end


def _kill_points(first: float, last: float, n: int) -> list[float]:
    return [first + (last - first) * (i + 0.5) / n for i in range(n)]


def _syncs(log: Path) -> list[str]:
    """The fsync and syncfs calls and folder swaps the sitecustomize saw, in order."""
    return log.read_text().split() if log.exists() else []


def _assert_durable_by(mode: str, calls: list[str], project: dict[str, object]) -> None:
    """The files were made durable the way `mode` says before any folder was swapped in (an
    fsync per file and per VM folder, or one syncfs), then one fsync of the output folder."""
    files = sum(len(f) for f in project["expected"]["new"].values())  # type: ignore[index]
    durable = ["syncfs"] if mode == "syncfs" else ["fsync"] * (files + len(SAMPLES))
    assert calls == durable + ["swap"] * len(SAMPLES) + ["fsync"], calls


@pytest.mark.parametrize("mode", sorted(MODES))
def test_cli_build_killed_anywhere_leaves_old_or_new(project: dict[str, object], tmp_path: Path, mode: str) -> None:
    root = project["root"]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "hvconf", "build", *[f"samples/{s}.hv" for s in SAMPLES], "-o", str(out)]
    env = _env(project, HVCONF_TEST_WRITE_DELAY=str(DELAY), **MODES[mode])
    _fresh_old_output(project, out)
    w0, w1, total = _timed_run(command, {**env, "HVCONF_TEST_SYNC_LOG": str(tmp_path / "syncs")}, root / "new",
                               tmp_path / "log")  # type: ignore[operator]
    assert _assert_old_or_new(project, out, "unkilled") == "nnnn"
    _assert_durable_by(mode, _syncs(tmp_path / "syncs"), project)
    assert w1 - w0 > 0.25, "the sitecustomize did not slow the write down"
    # Two kill points while compiling (by the clock), the rest spread over the write itself
    # (timed from the write's start mark, so a slower or faster run cannot move them out).
    seen = set()
    for t in _kill_points(0.05, w0 * 0.8, 2):
        _fresh_old_output(project, out)
        _kill_at(command, env, root / "new", t)  # type: ignore[operator]
        seen.add(_assert_old_or_new(project, out, f"killed at {t:.2f} s"))
    for offset in _kill_points(0.0, w1 - w0, KILL_POINTS_CLI - 2):
        _fresh_old_output(project, out)
        _kill_inside_the_write(command, env, root / "new", tmp_path / "log", offset)  # type: ignore[operator]
        seen.add(_assert_old_or_new(project, out, f"killed {offset:.2f} s into the write"))
    assert "oooo" in seen and len(seen) > 1, f"kills never landed inside the write: {seen}"


@pytest.mark.parametrize("mode", sorted(MODES))
def test_writer_killed_inside_the_write_leaves_old_or_new_and_next_build_cleans_up(
        project: dict[str, object], tmp_path: Path, mode: str) -> None:
    root = project["root"]
    out = tmp_path / "out"
    command = [sys.executable, "-c", WRITER, str(out), str(root / "new.pickle")]  # type: ignore[operator]
    env = _env(project, HVCONF_TEST_WRITE_DELAY=str(DELAY), **MODES[mode])
    _fresh_old_output(project, out)
    w0, w1, _ = _timed_run(command, {**env, "HVCONF_TEST_SYNC_LOG": str(tmp_path / "syncs")}, tmp_path,
                           tmp_path / "log")
    _assert_durable_by(mode, _syncs(tmp_path / "syncs"), project)
    seen, left = set(), 0
    # Kill points by the clock over the write, then after each folder swap (synchronised on the
    # sitecustomize's "swap" notes): on a loaded machine every clock-timed kill can land before
    # the first swap, and the mixed states must be hit whatever the load.
    kills = [(f"{t:.3f} s into the write", lambda t=t: _kill_inside_the_write(command, env, tmp_path,
                                                                             tmp_path / "log", t))
             for t in _kill_points(0.0, w1 - w0, KILL_POINTS_WRITE)]
    kills += [(f"after swap {k}", lambda k=k: _kill_after_swaps(command, env, tmp_path, tmp_path / "swaps", k))
              for k in range(1, len(SAMPLES))]
    for when, kill in kills:
        _fresh_old_output(project, out)
        kill()
        seen.add(_assert_old_or_new(project, out, f"killed {when}"))
        left += bool(leftovers(out))
        # The next build of the same VMs removes what the killed one left and writes the new output.
        write_tree(out, pickle.loads((root / "new.pickle").read_bytes()))  # type: ignore[operator]
        assert leftovers(out) == [], f"after a kill {when}"
        assert _assert_old_or_new(project, out, "rebuilt") == "nnnn"
    # Mixed states (some VMs old, some new) must have been hit, and temp folders left behind.
    assert len(seen) >= 3 and left > 0, (seen, left)


def test_a_write_failing_midway_keeps_every_old_folder(project: dict[str, object], tmp_path: Path) -> None:
    root = project["root"]
    out = tmp_path / "out"
    for fail_at in (1, 5, 12):  # the nth fsync fails with ENOSPC
        _fresh_old_output(project, out)
        done = subprocess.run([sys.executable, "-m", "hvconf", "build", *[f"samples/{s}.hv" for s in SAMPLES],
                               "-o", str(out)], env=_env(project, HVCONF_TEST_FAIL_FSYNC=str(fail_at), **MODES["fsync"]),
                              cwd=root / "new", capture_output=True, text=True, timeout=120)  # type: ignore[operator]
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "No space left on device" in done.stderr
        assert _assert_old_or_new(project, out, f"fsync {fail_at} failed") == "oooo"
        assert leftovers(out) == []


@pytest.mark.parametrize("err", [errno.EIO, errno.ENOSPC, errno.EDQUOT])
def test_a_failing_syncfs_fails_the_build_and_keeps_every_old_folder(project: dict[str, object], tmp_path: Path,
                                                                    err: int) -> None:
    # What syncfs reports (a writeback error of any file written since the output folder was
    # opened) fails the build before any folder is swapped in, as a failing fsync does.
    root = project["root"]
    out = tmp_path / "out"
    _fresh_old_output(project, out)
    done = subprocess.run([sys.executable, "-m", "hvconf", "build", *[f"samples/{s}.hv" for s in SAMPLES],
                           "-o", str(out)], env=_env(project, HVCONF_TEST_SYNCFS_ERRNO=str(err), **MODES["syncfs"]),
                          cwd=root / "new", capture_output=True, text=True, timeout=120)  # type: ignore[operator]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"hvconf: error: cannot write {out}: {os.strerror(err)}"
    assert _assert_old_or_new(project, out, f"syncfs failed with {errno.errorcode[err]}") == "oooo"
    assert leftovers(out) == []


@pytest.mark.parametrize("err", [errno.ENOSYS, errno.EPERM])
def test_a_refused_syncfs_falls_back_to_an_fsync_per_file(project: dict[str, object], tmp_path: Path,
                                                          err: int) -> None:
    # A seccomp filter that refuses the call itself: every staged file and folder is fsynced instead.
    root = project["root"]
    out = tmp_path / "out"
    _fresh_old_output(project, out)
    subprocess.run([sys.executable, "-m", "hvconf", "build", *[f"samples/{s}.hv" for s in SAMPLES], "-o", str(out)],
                   env=_env(project, HVCONF_TEST_SYNCFS_ERRNO=str(err), HVCONF_TEST_SYNC_LOG=str(tmp_path / "syncs"),
                            **MODES["syncfs"]),
                   cwd=root / "new", check=True, capture_output=True, timeout=120)  # type: ignore[operator]
    assert _assert_old_or_new(project, out, "after the fallback") == "nnnn"
    calls = _syncs(tmp_path / "syncs")
    assert calls[0] == "syncfs", calls
    _assert_durable_by("fsync", calls[1:], project)


def test_stale_leftovers_of_the_written_vms_only_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, {"a": {"f": b"old"}, "b": {"f": b"old"}})
    (out / ".a.abcdefgh.tmp").mkdir()
    (out / ".a.abcdefgh.tmp" / "f").write_bytes(b"half")
    (out / ".b.zzzzzzzz.tmp").mkdir()  # b is not written this time: not ours to touch
    (out / ".a.abcdefgh.tmp.keep").mkdir()  # not a name mkdtemp makes
    (out / ".git").mkdir()
    write_tree(out, {"a": {"f": b"new"}})
    assert sorted(p.name for p in out.iterdir()) == [".a.abcdefgh.tmp.keep", ".b.zzzzzzzz.tmp", ".git", "a", "b"]
    assert (out / "a" / "f").read_bytes() == b"new" and (out / "b" / "f").read_bytes() == b"old"


def test_a_kill_between_the_two_renames_of_the_fallback_is_undone(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Without RENAME_EXCHANGE the old folder is moved aside first; a kill right then leaves
    # no out/a at all. The next write puts the old one back before doing anything else.
    out = tmp_path / "out"
    write_tree(out, {"a": {"f": b"old"}})
    aside = out / ".a.q1w2e3r4.old"
    aside.mkdir()
    os.rename(out / "a", aside / "previous")
    monkeypatch.setattr(output, "_stage", lambda *args: (_ for _ in ()).throw(OSError(28, "full")))
    with pytest.raises(OSError):
        write_tree(out, {"a": {"f": b"new"}})
    assert (out / "a" / "f").read_bytes() == b"old" and leftovers(out) == []


def test_fallback_without_exchange_still_replaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    write_tree(out, {"a": {"f": b"old"}})
    write_tree(out, {"a": {"f": b"new"}})
    assert (out / "a" / "f").read_bytes() == b"new" and leftovers(out) == []


def test_exchange_is_atomic_here(tmp_path: Path) -> None:
    # The guarantee rests on renameat2(RENAME_EXCHANGE) working on this filesystem.
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    (tmp_path / "x" / "1").touch()
    assert output._exchange(tmp_path / "x", tmp_path / "y")
    assert (tmp_path / "y" / "1").exists() and not (tmp_path / "x" / "1").exists()


def _count_syncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    fsync, syncfs = os.fsync, output._syncfs_call
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync") or fsync(fd))
    monkeypatch.setattr(output, "_syncfs_call", lambda fd: calls.append("syncfs") or syncfs(fd))
    return calls


def test_the_number_of_files_picks_fsyncs_or_one_syncfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(output.SYNCFS_FROM_ENV, raising=False)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if not output._bulk(fd, output.SYNCFS_FROM_FILES):
            pytest.skip("syncfs is not used on this kernel or filesystem")
    finally:
        os.close(fd)
    calls = _count_syncs(monkeypatch)
    few = output.SYNCFS_FROM_FILES - 1
    write_tree(tmp_path / "few", {f"v{i}": {"f": b"x"} for i in range(few)})
    assert calls == ["fsync"] * (2 * few + 1)  # each file and folder, then the output folder
    calls.clear()
    write_tree(tmp_path / "many", {f"v{i}": {"f": b"x"} for i in range(few + 1)})
    assert calls == ["syncfs", "fsync"]
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == sorted(f"v{i}" for i in range(few + 1))


def test_syncfs_only_where_it_reports_errors_and_reaches_the_disk(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        if not output._bulk(fd, 10**6):
            pytest.skip("syncfs is not used on this kernel or filesystem")
        monkeypatch.setattr(output, "_filesystem_type", lambda fd: 0x6969)  # NFS: syncfs may not commit
        assert not output._bulk(fd, 10**6)
        monkeypatch.setattr(output, "_filesystem_type", lambda fd: None)  # fstatfs failed
        assert not output._bulk(fd, 10**6)
        monkeypatch.undo()
        monkeypatch.setattr(output, "_syncfs", lambda: None)  # no syncfs in libc, or an older kernel
        assert not output._bulk(fd, 10**6)
    finally:
        os.close(fd)


@pytest.mark.parametrize("release, version", [("6.18.44-fc-v1272", (6, 18)), ("5.16.0-7-amd64", (5, 16)),
                                              ("5.17", (5, 17)), ("4.19.0+", (4, 19)), ("unknown", (0, 0))])
def test_kernel_releases_are_read(release: str, version: tuple[int, int]) -> None:
    assert output._kernel(release) == version


def test_syncfs_is_not_trusted_on_kernels_that_drop_its_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    # Before 5.17 syncfs could return 0 after a failed journal commit (5679897eb104).
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "host", "5.16.20", "#1", "x86_64")))
    output._syncfs.cache_clear()
    try:
        assert output._syncfs() is None
    finally:
        output._syncfs.cache_clear()


@pytest.mark.parametrize("where", ["tmp", "/proc", "/dev/shm", "/sys"])
def test_the_filesystem_type_is_what_statfs_reports(tmp_path: Path, where: str) -> None:
    # Real fstatfs(2) through ctypes against stat(1): the struct's first field is read right.
    path = tmp_path if where == "tmp" else Path(where)
    if not path.is_dir():
        pytest.skip(f"no {where} here")
    want = subprocess.run(["stat", "-f", "-c", "%t", str(path)], capture_output=True, text=True, check=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert output._filesystem_type(fd) == int(want.stdout, 16)
    finally:
        os.close(fd)


def test_syncfs_runs_on_this_kernel(tmp_path: Path) -> None:
    if output._syncfs() is None:
        pytest.skip("no trusted syncfs on this kernel")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        output._syncfs_call(fd)  # a real syncfs(2): nothing failed since fd was opened
        with pytest.raises(OSError) as err:
            output._syncfs_call(-1)
        assert err.value.errno == errno.EBADF  # its errors are raised, never ignored
    finally:
        os.close(fd)
