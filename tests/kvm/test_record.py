"""Record (the runtime's light stand-in for frozen dataclasses) and the launcher's argparse-free option path.

Records must keep what the frozen dataclasses gave: equality by exact type
and values, hashing, immutability, defaults, a readable repr, errors for
bad arguments. (The launcher's fast option parser, once tested here, is
tested with the other option checks in test_options.py.)
"""

from __future__ import annotations

import pickle

import pytest

from hvconf.kvm.ioctls import kvm_run
from hvconf.contract import Image, is_fd
from hvconf.kvm.ioctls.system import CpuidEntry


def test_equality_is_by_type_and_values():
    assert kvm_run.Io("out", 1, 0x3F8, 1, b"a", 4096) == kvm_run.Io("out", 1, 0x3F8, 1, b"a", 4096)
    assert kvm_run.Io("out", 1, 0x3F8, 1, b"a", 4096) != kvm_run.Io("out", 1, 0x3F9, 1, b"a", 4096)
    assert kvm_run.Hlt() == kvm_run.Hlt() and kvm_run.Hlt() != kvm_run.Shutdown() and kvm_run.Hlt() != ()
    assert kvm_run.PaprHcall(1, (2,)) != kvm_run.EpaprHcall(1, (2,))  # same fields, another kind
    assert len({kvm_run.Unknown(7), kvm_run.Unknown(7), kvm_run.Unknown(8)}) == 2


def test_records_are_immutable():
    io = kvm_run.Io("in", 2, 0x60, 1, b"", 4096)
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


def test_a_positional_record_takes_its_fields_as_a_written_out_init_would():
    # hvconf.record.positional generates the AST nodes', Span's and Tok's constructor from __slots__
    from hvconf.diagnostics import Span
    from hvconf.syntax.ast import Setting, Str

    span = Span.point("a.hv", 2, 5)
    assert span == Span("a.hv", 2, 5, 2, 6) == Span(file="a.hv", line=2, col=5, end_line=2, end_col=6)
    node = Setting("kernel", (Str("vmlinux", span),), span, key_span=span)
    assert (node.key, node.values[0].value, node.key_span) == ("kernel", "vmlinux", span)
    assert repr(Str("x", span)) == f"Str(value='x', span={span!r})"
    assert pickle.loads(pickle.dumps(node)) == node
    assert Setting.__init__.__qualname__ == "Setting.__init__"
    with pytest.raises(TypeError):
        Str("x")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Str("x", span, span)  # type: ignore[call-arg]
    with pytest.raises(AttributeError, match="immutable Str"):
        Str("x", span).value = "y"  # type: ignore[misc]


def test_repr_and_pickle():
    event = kvm_run.SystemEvent(1, (5,))
    assert repr(event) == "SystemEvent(type=1, data=(5,))" and event.ndata == 1
    assert pickle.loads(pickle.dumps(event)) == event


@pytest.mark.parametrize("name, ok", [
    ("system", True), ("vm", True), ("vcpu:0", True), ("vcpu:17", True), ("vcpu:01", False), ("vcpu:", False),
    ("vcpu:-1", False), ("vcpu:1\n", False), ("vcpu:\u0661", False), ("vm\n", False), ("VM", False),
])  # fmt: skip
def test_fd_names(name, ok):
    assert is_fd(name) == ok
