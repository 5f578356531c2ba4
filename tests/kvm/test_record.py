"""Record (the runtime's light stand-in for frozen dataclasses) and the launcher's argparse-free option path.

Records must keep what the frozen dataclasses gave: equality by exact type
and values, hashing, immutability, defaults, a readable repr, errors for
bad arguments. (The launcher's fast option parser, once tested here, is
tested with the other option checks in test_options.py.)
"""

from __future__ import annotations

import pickle

import pytest

from hvconf.kvm import exits
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
