"""hvconf/kvm/facts.py (the ABI facts a launch needs, precomputed) and what a launch imports.

The committed facts.py must be what facts_build.py generates from hvconf.abi
now, and every fact in it must be what hvconf.abi answers. A real launch
(hvconf.kvm.launch + hvconf.kvm.run) must not import hvconf.abi, TOML,
dataclasses, typing, argparse, pathlib, hashlib, json or re: each was a
measured part of the start-up time (issue 6).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import hvconf.abi
from hvconf.abi import tables
from hvconf.kvm import cdefs, elf, exits, facts, facts_build, fd, images

REPO = Path(__file__).resolve().parents[2]


def test_committed_facts_are_current():
    committed = facts_build.TARGET.read_text(encoding="utf-8")
    assert committed == facts_build.generate(), "hvconf/kvm/facts.py is stale: run `python -m hvconf.kvm.facts_build`"


@pytest.mark.parametrize("arch", hvconf.abi.ARCHES)
def test_every_request_number_is_what_the_abi_computes(arch):
    defined = {name for name, info in hvconf.abi.ioctls().items() if arch in info.arches}
    assert set(facts.REQUESTS[arch]) == defined and defined
    for name in defined:
        assert fd.request(name, arch) == hvconf.abi.request(name, arch), (arch, name)


def test_names_exits_and_columns_are_the_abis():
    assert facts.IOCTLS == set(hvconf.abi.ioctls())
    assert facts.EXITS == {name: row.number for name, row in tables.exits().items()}
    assert facts.LAYOUT_OF_ARCH == dict(hvconf.abi.LAYOUT_OF_ARCH)
    for number in {row.number for row in tables.exits().values()} | {9999}:
        want = hvconf.abi.exit_reason(number).name if number != 9999 else "exit reason 9999"
        assert exits.exit_name(number) == want


def test_what_the_facts_lack_still_fails_as_the_abi_does():
    # an ioctl no arch defines, an arch hvconf does not know: hvconf.abi's own errors and hints
    orphan = sorted(facts.IOCTLS - {n for names in facts.REQUESTS.values() for n in names})
    for name in orphan[:1]:
        with pytest.raises(hvconf.abi.AbiError, match="not defined for arch"):
            fd.request(name, "x86_64")
    with pytest.raises(hvconf.abi.AbiError, match="did you mean KVM_RUN"):
        fd.request("KVM_RUNN", "x86_64")
    with pytest.raises(hvconf.abi.AbiError, match="unknown arch"):
        cdefs.column("x86-64")


def test_the_images_elf_magic_is_elfs():
    assert images.ELF_MAGIC == elf.MAGIC


# What each of these cost a launch before (ms, -X importtime on this host while loaded; see issue 6).
NOT_AT_LAUNCH = {
    "hvconf.abi": "TOML tables via importlib.resources",
    "tomllib": "",
    "importlib.resources": "",
    "dataclasses": "and inspect",
    "typing": "",
    "argparse": "only for --help, --kernel/--guest and odd command lines",
    "pathlib": "the generated launch.py imports it itself, for now",
    "hashlib": "libcrypto; _sha256 checks the image",
    "json": "only for --trace and --dry-run",
    "re": "",
    "platform": "",
    "hvconf.kvm.elf": "only for ELF images",
    "enum": "signal.py's and IntEnum's: hvconf.kvm.signals and a plain Status instead (~1.5 ms)",
    "signal": "",
}


def test_a_real_launch_imports_none_of_the_slow_modules():
    import _cffi_backend

    code = ("import sys; before = set(sys.modules); import hvconf.kvm.launch, hvconf.kvm.run; "
            "print(' '.join(sorted(set(sys.modules) - before)))")
    # -S: no site, so no .pth file of this environment has imported any of them already
    path = os.pathsep.join([str(REPO), os.path.dirname(_cffi_backend.__file__)])
    env = dict(os.environ, PYTHONPATH=path)
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, env=env,
                         cwd=REPO).stdout.split()  # fmt: skip
    assert "hvconf.kvm.run" in out and "_cffi_backend" in out
    assert sorted(set(out) & set(NOT_AT_LAUNCH)) == []
