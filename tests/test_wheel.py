"""The wheel and sdist users install from: built from this checkout with `python -m build`
(the sdist first, the wheel from the unpacked sdist, as build does), accepted by
`twine check`, and a wheel that works installed: outside the checkout it finds its grammar,
targets, samples, guests, explain samples and language reference under hvconf/_data.

Needs `build`, `twine` and `hatchling` (the `test` extra); builds without network
(--no-isolation: the installed hatchling builds).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NEEDED = ("build", "twine", "hatchling")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (pip install '.[test]')")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_twine_accepts_the_wheel_and_sdist(dist: Path) -> None:
    files = [only(dist, "hvconf-*.whl"), only(dist, "hvconf-*.tar.gz")]
    done = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, files)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_the_wheel_holds_the_data_hvconf_reads(dist: Path) -> None:
    names = set(zipfile.ZipFile(only(dist, "hvconf-*.whl")).namelist())
    expected = {"hvconf/_data/grammar/hvconf.lark", "hvconf/_data/docs/language.md",
                "hvconf/_data/samples/pseries.hv", "hvconf/_data/samples/base/pseries.hv",
                "hvconf/_data/guests/x86/hello.S", "hvconf/_data/examples/invalid/hcall-not-toggleable.hv",
                "hvconf/lint/explain.toml", "hvconf/emit/templates/launch.py.j2"}
    expected |= {f"hvconf/_data/targets/{t.name}/{f}" for t in (REPO / "targets").iterdir()
                 for f in ("target.toml", "caps.toml", "hcalls.toml", "devices.toml")}
    assert expected <= names, sorted(expected - names)
    assert not [n for n in names if "__pycache__" in n or n.startswith("tests/")]


def test_an_installed_wheel_works_outside_the_checkout(dist: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                           "--target", str(site), str(only(dist, "hvconf-*.whl"))],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    env = {**os.environ, "PYTHONPATH": str(site), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    probe = ("import json, hvconf, hvconf.resources as r; print(json.dumps({'module': hvconf.__file__, "
             "'grammar': str(r.grammar_path()), 'targets': str(r.targets_dir()), 'samples': str(r.samples_dir()), "
             "'invalid': str(r.invalid_samples_dir()), 'language': str(r.language_doc())}))")
    found = json.loads(subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True,
                                      text=True, check=True, timeout=120).stdout)
    data = site / "hvconf" / "_data"
    assert found == {"module": str(site / "hvconf" / "__init__.py"), "grammar": str(data / "grammar" / "hvconf.lark"),
                     "targets": str(data / "targets"), "samples": str(data / "samples"),
                     "invalid": str(data / "examples" / "invalid"), "language": str(data / "docs" / "language.md")}
    # The installed samples check clean, including the ones that assemble ../guests sources (their
    # project is _data: outside a repository a file's project is its own folder, docs/robustness.md).
    checked = subprocess.run([sys.executable, "-m", "hvconf", "check", "--root", str(data), str(data / "samples")],
                             env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    explained = subprocess.run([sys.executable, "-m", "hvconf", "explain", "hcall-not-toggleable"], env=env,
                               cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert explained.returncode == 0 and "H_RTAS" in explained.stdout, explained.stderr
