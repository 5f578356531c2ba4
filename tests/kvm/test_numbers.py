"""hvconf/kvm/ioctls/numbers.py (the uapi numbers a launch needs, precomputed) and what a launch imports.

The committed numbers.py must be what numbers_build.py generates from
hvconf.abi now, every number in it must be what hvconf.abi answers, and
each distinct request table is stored once (one per layout column). A real
launch (hvconf.kvm.launch + hvconf.kvm.run) must not import hvconf.abi,
TOML, dataclasses, typing, argparse, pathlib, hashlib, json or re: each was
a measured part of the start-up time (issue 6).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import hvconf.abi
from hvconf.abi import tables
from hvconf.contract import ARCHES, LAYOUTS
from hvconf.kvm import elf, images
from hvconf.kvm.ioctls import cdefs, fd, kvm_run, numbers, numbers_build

REPO = Path(__file__).resolve().parents[2]


def test_committed_numbers_are_current():
    committed = numbers_build.TARGET.read_text(encoding="utf-8")
    assert committed == numbers_build.generate(), (
        "hvconf/kvm/ioctls/numbers.py is stale: run `python -m hvconf.kvm.ioctls.numbers_build`")


@pytest.mark.parametrize("arch", hvconf.abi.ARCHES)
def test_every_request_number_is_what_the_abi_computes(arch):
    defined = {name for name, info in hvconf.abi.ioctls().items() if arch in info.arches}
    record = ARCHES[arch]
    table = {**numbers.SHARED.get(record.ioc, {}), **numbers.REQUESTS[record.layout]}
    assert set(table) - set(numbers.NOT_ON_ARCH.get(arch, ())) == defined and defined
    for name in defined:
        assert fd.request(name, arch) == table[name] == hvconf.abi.request(name, arch), (arch, name)


def test_each_number_is_stored_once():
    # one table per layout column (an encoding and a struct layout), without the numbers all the columns of
    # its encoding share, which are stored once for them: no (ioctl, number) pair is stored twice
    assert tuple(numbers.REQUESTS) == LAYOUTS
    stored = [(ioc, pair) for ioc, table in numbers.SHARED.items() for pair in table.items()]
    stored += [(ARCHES[next(a for a in ARCHES if ARCHES[a].layout == column)].ioc, pair)
               for column, table in numbers.REQUESTS.items() for pair in table.items()]  # fmt: skip
    assert len(stored) == len(set(stored))
    assert set(numbers.SHARED) == {"generic"} and len(numbers.SHARED["generic"]) > 50  # x86_64 and s390x
    # what an arch lacks of its column's table is refused as hvconf.abi refuses it
    for arch, names in numbers.NOT_ON_ARCH.items():
        assert names and set(names) <= set(numbers.REQUESTS[ARCHES[arch].layout])
        for name in names:
            with pytest.raises(hvconf.abi.AbiError, match="not defined for arch"):
                fd.request(name, arch)


def test_names_and_exits_are_the_abis():
    assert numbers.IOCTLS == set(hvconf.abi.ioctls())
    assert numbers.EXITS == {name: row.number for name, row in tables.exits().items()}
    for number in {row.number for row in tables.exits().values()} | {9999}:
        want = hvconf.abi.exit_reason(number).name if number != 9999 else "exit reason 9999"
        assert kvm_run.exit_name(number) == want


def test_what_the_numbers_lack_still_fails_as_the_abi_does():
    # an ioctl no arch defines, an arch hvconf does not know: hvconf.abi's own errors and hints
    stored = {n for names in [*numbers.REQUESTS.values(), *numbers.SHARED.values()] for n in names}
    orphan = sorted(numbers.IOCTLS - stored)
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

    # the entry point, the executor, and the parts of this host's family a run loads (families.part)
    code = ("import sys; before = set(sys.modules); import hvconf.kvm.launch, hvconf.kvm.run; "
            "from hvconf.kvm import families; from hvconf.kvm.ioctls.ffi import ARCH; "
            "[families.part(ARCH, part) for part in ('exits', 'steps', 'devices', 'hypercalls', 'host')]; "
            "print(' '.join(sorted(set(sys.modules) - before)))")
    # -S: no site, so no .pth file of this environment has imported any of them already
    path = os.pathsep.join([str(REPO), os.path.dirname(_cffi_backend.__file__)])
    env = dict(os.environ, PYTHONPATH=path)
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, env=env,
                         cwd=REPO).stdout.split()  # fmt: skip
    assert {"hvconf.kvm.run", "hvconf.kvm.x86.exits", "hvconf.kvm.x86.devices", "_cffi_backend"} <= set(out)
    assert sorted(set(out) & set(NOT_AT_LAUNCH)) == []
