"""Record (the runtime's light stand-in for frozen dataclasses) and the launcher's argparse-free option path.

Records must keep what the frozen dataclasses gave: equality by exact type
and values, hashing, immutability, defaults, a readable repr, errors for
bad arguments. `plain_options` must parse every command line it accepts
exactly as the argparse parser does, and leave every other one to it.
"""

from __future__ import annotations

import pickle

import pytest

from hvconf.kvm import exits
from hvconf.kvm.launch import _parser, plain_options
from hvconf.kvm.plan import Image, is_fd
from hvconf.kvm.x86 import CpuidEntry


def test_equality_is_by_type_and_values():
    assert exits.Io("out", 1, 0x3F8, 1, b"a", 4096) == exits.Io("out", 1, 0x3F8, 1, b"a", 4096)
    assert exits.Io("out", 1, 0x3F8, 1, b"a", 4096) != exits.Io("out", 1, 0x3F9, 1, b"a", 4096)
    assert exits.Hlt() == exits.Hlt() and exits.Hlt() != exits.Shutdown() and exits.Hlt() != ()
    assert exits.PaprHcall(1, (2,)) != exits.EpaprHcall(1, (2,))  # same fields, another kind
    assert len({exits.Unknown(7), exits.Unknown(7), exits.Unknown(8)}) == 2


def test_records_are_immutable():
    io = exits.Io("in", 2, 0x60, 1, b"", 4096)
    with pytest.raises(AttributeError, match="immutable Io"):
        io.port = 0x61  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del io.size  # type: ignore[misc]
    with pytest.raises(AttributeError):
        io.extra = 1  # type: ignore[attr-defined]
    assert io.port == 0x60 and io.length == 2


def test_defaults_keywords_and_bad_arguments():
    assert CpuidEntry(0x40000001, eax=0x80) == CpuidEntry(0x40000001, 0, 0, 0x80, 0, 0, 0)
    assert Image("guest", "guest.bin", 0x7C00, None).format == "flat"
    with pytest.raises(TypeError, match="missing argument 'path'"):
        Image("guest")
    with pytest.raises(TypeError, match="unexpected or repeated arguments colour"):
        CpuidEntry(1, colour=2)
    with pytest.raises(TypeError, match="unexpected or repeated arguments function"):
        CpuidEntry(1, function=2)
    with pytest.raises(TypeError, match="takes 7 arguments, got 8"):
        CpuidEntry(*range(8))


def test_repr_and_pickle():
    event = exits.SystemEvent(1, (5,))
    assert repr(event) == "SystemEvent(type=1, data=(5,))" and event.ndata == 1
    assert pickle.loads(pickle.dumps(event)) == event


@pytest.mark.parametrize("name, ok", [
    ("system", True), ("vm", True), ("vcpu:0", True), ("vcpu:17", True), ("vcpu:01", False), ("vcpu:", False),
    ("vcpu:-1", False), ("vcpu:1\n", False), ("vcpu:\u0661", False), ("vm\n", False), ("VM", False),
])  # fmt: skip
def test_fd_names(name, ok):
    assert is_fd(name) == ok


PLAIN = [[], ["--dry-run"], ["--trace", "--quiet"], ["--timeout", "120"], ["--timeout=0.5", "--trace"],
         ["--timeout", "1", "--timeout", "2"], ["--timeout", "1e3"], ["--timeout", " 7 "], ["--timeout", "nan"],
         ["--quiet", "--dry-run", "--trace", "--timeout", "0"]]  # fmt: skip
ARGPARSE = [["--help"], ["-h"], ["--time", "3"], ["--dry"], ["--timeout"], ["--timeout", "-1"], ["--timeout=-1"],
            ["--timeout", "x"], ["--timeout="], ["--kernel", "vmlinux"], ["--guest=g.elf"], ["--bogus"], ["--"],
            ["extra"], ["--timeout", "--trace"]]  # fmt: skip


@pytest.mark.parametrize("argv", PLAIN, ids=" ".join)
def test_plain_command_lines_parse_as_argparse_parses_them(argv):
    mine, theirs = plain_options(argv), _parser("vm").parse_args(argv)
    assert mine is not None
    assert set(vars(mine)) == set(vars(theirs))
    for name, value in vars(theirs).items():
        got = getattr(mine, name)
        assert got == value or (got != got and value != value), name  # nan != nan


@pytest.mark.parametrize("argv", ARGPARSE, ids=" ".join)
def test_every_other_command_line_goes_to_argparse(argv):
    assert plain_options(argv) is None
