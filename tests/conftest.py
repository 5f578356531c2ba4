"""Shared pytest set-up: the `kvm` marker and paths to the repo's data.

Tests marked `kvm` need a working /dev/kvm on an x86_64 host. Where it is
absent they are skipped with the reason, never faked.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

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
