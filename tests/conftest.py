"""Shared pytest set-up: the `kvm` marker, paths to the repo's data, and outputs several
modules read (the samples built, the wheel), made once per session.

Tests marked `kvm` need a working /dev/kvm on an x86_64 host. Where it is
absent they are skipped with the reason, never faked.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import hvconf

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"


def _kvm_unavailable_reason() -> str | None:
    if platform.machine() != "x86_64":
        return f"real-KVM tests need an x86_64 host, this is {platform.machine()}"
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as err:
        return f"/dev/kvm cannot be opened: {err.strerror}"
    os.close(fd)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _kvm_unavailable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "kvm" in item.keywords:
            item.add_marker(skip)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden from the current outputs")


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`hvconf build samples/*.hv` into a fresh folder (read it only: other modules share it)."""
    out = tmp_path_factory.mktemp("samples-build")
    done = hvconf("build", *map(str, sorted(SAMPLES.glob("*.hv"))), "-o", str(out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, as `pip wheel` builds it."""
    pytest.importorskip("hatchling", reason="building the wheel needs hatchling (pip install '.[test]')")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, timeout=120, capture_output=True)
    [whl] = out.glob("hvconf-*.whl")
    return whl


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """That wheel installed into a folder of its own (`pip install --target`), away from the checkout:
    a test puts the folder on sys.path of an isolated interpreter."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, timeout=120, capture_output=True)
    return site
