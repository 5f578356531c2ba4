"""Golden outputs of every sample: DTS, plan.json and manifest.json (whose
hashes cover the DTB, launch.py and guest images). A change in any output
shows up here as a readable diff; `pytest --update-golden` rewrites them."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvconf import compiler

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
SAMPLES = sorted((REPO / "samples").glob("*.hv"))
KEPT = ("plan.json", "manifest.json")


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_outputs_match_golden(sample: Path, request: pytest.FixtureRequest) -> None:
    result = compiler.build([sample])
    assert not result.report.has_errors
    for built in result.built:
        folder = GOLDEN / sample.stem / built.vm.name
        names = [n for n in built.files if n in KEPT or n.endswith(".dts")]
        if request.config.getoption("--update-golden"):
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.iterdir():
                old.unlink()
            for name in names:
                (folder / name).write_bytes(built.files[name])
            continue
        assert folder.is_dir(), f"no golden outputs for {sample.name}; run pytest --update-golden"
        assert sorted(p.name for p in folder.iterdir()) == sorted(names)
        for name in names:
            assert built.files[name].decode() == (folder / name).read_text(), f"{sample.stem}/{built.vm.name}/{name}"


@pytest.mark.parametrize("sample", [s for s in SAMPLES if s.stem in ("pseries", "pseries-pr", "e500")], ids=lambda p: p.stem)
def test_dtc_reads_every_sample_dtb_and_agrees_with_the_dts(sample: Path, tmp_path: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("dtc") is None:
        pytest.skip("dtc is not installed (Debian: device-tree-compiler)")
    [built] = compiler.build([sample]).built
    dts, dtb = tmp_path / "vm.dts", tmp_path / "vm.dtb"
    dts.write_bytes(built.files[f"{built.vm.name}.dts"])
    dtb.write_bytes(built.files[f"{built.vm.name}.dtb"])
    from_dtb = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True, text=True, timeout=30)
    assert from_dtb.returncode == 0 and not from_dtb.stderr, from_dtb.stderr
    compiled = subprocess.run(["dtc", "-I", "dts", "-O", "dtb", str(dts)], capture_output=True, timeout=30)
    assert compiled.returncode == 0 and not compiled.stderr, compiled.stderr
    assert compiled.stdout == dtb.read_bytes()  # dtc compiles our DTS to exactly our DTB
    again = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", "-"], input=compiled.stdout, capture_output=True, timeout=30)
    assert again.stdout.decode() == from_dtb.stdout
