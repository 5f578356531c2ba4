"""The run's output streams (hvconf/kvm/output.py), and every console of the runtime writing through them.

The safe rendering is checked case by case against the rules its docstring
states, byte by byte as a 16550 guest sends, and against the GitHub runner's
own command rule (a line whose first non-blank characters are `::`). The
writer is checked on real descriptors: a pipe whose reader is gone (EPIPE),
/dev/full (ENOSPC), a closed stdout, a pipe nobody reads while the run ends,
and an O_NONBLOCK pipe (no byte lost). The sPAPR hvterm and the ePAPR byte
channel cannot run here (no PowerPC host), so they are driven through crafted
kvm_run buffers (the helpers of test_buffers_papr.py / test_buffers_epapr.py):
the same rendering and the same OutputError as the x86 serial console.
"""

from __future__ import annotations

import errno
import fcntl
import gc
import io
import os
import socket
import threading
import time

import pytest

from hvconf.kvm.console import Serial16550
from hvconf.kvm.console_hv import ByteChannel, HvTerm
from hvconf.kvm.exits import Io
from hvconf.kvm.hcall import EpaprHandlers, FlatMemory, PaprHandlers
from hvconf.kvm.output import Output, OutputError, SafeText

from . import test_buffers_epapr as epapr_buffers
from . import test_buffers_papr as papr_buffers
from .test_buffers_epapr import proposed  # noqa: F401 - a fixture

SAFE = [
    # (guest bytes, what the safe console prints)
    (b"hello\n", b"hello\n"),
    (b"tab\there\n", b"tab\there\n"),
    (b"\x1b]0;title\x07\x1b[2J\x1b[31mred\x1b[0m\n", b"\\x1b]0;title\\x07\\x1b[2J\\x1b[31mred\\x1b[0m\n"),
    (b"\x00\x08\x0b\x0c\x7f", b"\\x00\\x08\\x0b\\x0c\\x7f"),
    (b"crlf\r\n", b"crlf\n"),
    (b"hidden\rshown\n", b"hidden\\x0dshown\n"),
    (b"\r\r\n", b"\\x0d\n"),
    (b"\x9b31m", b"\\x9b31m"),  # an 8-bit CSI byte: not UTF-8
    ("\u009b1m".encode(), b"\\u009b1m"),  # the same CSI as a UTF-8 code point
    ("\u202etxt.exe \u200b \ufeff".encode(), b"\\u202etxt.exe \\u200b \\ufeff"),
    ("café ☃ 日本\n".encode(), "café ☃ 日本\n".encode()),
    (b"\xff\xc3(", b"\\xff\\xc3("),
    (b"::error file=a,line=1::x\n", b"\\x3a:error file=a,line=1::x\n"),
    (b" \t::warning::x\n", b" \t\\x3a:warning::x\n"),
    ("\u3000::notice::x\n".encode(), "\u3000\\x3a:notice::x\n".encode()),  # .NET TrimStart trims U+3000 too
    (b"a\n::add-mask::x\n", b"a\n\\x3a:add-mask::x\n"),
    (b":::x\n", b"\\x3a::x\n"),
    (b"a ::error::x\n", b"a ::error::x\n"),  # not at the line start: no command
    (b": x\n:\n", b": x\n:\n"),
    (b"say ##[error]x ##vso[task.complete]y ##teamcity[z]\n",
     b"say ##\\x5berror]x ##vso\\x5btask.complete]y ##teamcity\\x5bz]\n"),
    (b"# c [d] #[e] ## [f]\n", b"# c [d] #[e] ## [f]\n"),
    (b"\x1b::error::x\n", b"\\x1b::error::x\n"),  # the escape already makes it no command
]


def feed_all(pieces: list[bytes]) -> bytes:
    text = SafeText()
    return b"".join(text.feed(p) for p in pieces) + text.finish()


@pytest.mark.parametrize(("raw", "safe"), SAFE, ids=[repr(r)[2:24] for r, _ in SAFE])
def test_safe_rendering_whole_and_byte_by_byte(raw, safe):
    assert feed_all([raw]) == safe
    assert feed_all([raw[i : i + 1] for i in range(len(raw))]) == safe  # as a 16550 guest sends it


def test_what_is_held_back_is_written_at_the_end():
    text = SafeText()
    assert text.feed(b"a\r") == b"a" and text.feed(b"\n:") == b"\n"
    assert text.feed("\xe2\x98".encode("latin-1")) == b""  # the first two bytes of U+2603
    assert text.finish() == b":\\xe2\\x98"


def test_no_rendered_line_is_a_runner_command_or_holds_a_control():
    # The runner's rule (actions/runner ActionCommand.TryParseV2): after TrimStart, a line starting
    # with `::` is a command; TryParse: `##[` anywhere. Every byte value, at every place of a line.
    for first in range(256):
        for tail in (b"::error::x\n", b":x\n", b"##[error]\n", b"\n"):
            out = feed_all([bytes([first]) + tail, b" \t" + tail, tail])
            lines = out.decode("utf-8").split("\n")
            assert not [line for line in lines if line.lstrip().startswith("::") or "##[" in line], (first, out)
            assert not any(c < " " and c not in "\t" or "\x7f" <= c < "\xa0" for c in "".join(lines)), (first, out)


# ---- the writer ----


def test_a_pipe_whose_reader_is_gone_is_one_output_error_raised_again():
    r, w = os.pipe()
    os.close(r)
    out = Output(w, "console", "raw")
    try:
        with pytest.raises(OutputError) as first:
            out.write(b"x")
        assert str(first.value) == "console output failed: Broken pipe (EPIPE)"
        with pytest.raises(OutputError) as again:
            out.write(b"y")
        assert again.value is first.value
    finally:
        os.close(w)


def test_a_full_disk_and_a_closed_stream_fail_the_same_way():
    with open("/dev/full", "wb") as full:
        with pytest.raises(OutputError, match=r"^console output failed: No space left on device \(ENOSPC\)$"):
            Output(full, "console", "safe").write(b"x")
    with pytest.raises(OutputError, match=r"Bad file descriptor \(EBADF\)"):
        Output(None, "console").write(b"x")  # sys.stdout is None when fd 1 was closed
    closed = io.BytesIO()
    closed.close()
    with pytest.raises(OutputError, match="closed file"):
        Output(closed, "trace").write(b"x")


def test_a_stalled_reader_holds_a_write_only_until_the_run_ends():
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
    try:
        out, ending = Output(w, "console", "raw"), threading.Event()
        out.stopping = ending.is_set
        threading.Timer(0.3, ending.set).start()
        started = time.monotonic()
        out.write(b"x" * 100_000)  # more than the pipe holds; nobody reads
        assert 0.25 < time.monotonic() - started < 2
        assert out.blocked_since is None and out.failed is None
        assert 0 < len(os.read(r, 1 << 20)) < 100_000  # what fitted; the rest was dropped
    finally:
        os.close(r)
        os.close(w)


def test_an_o_nonblock_pipe_loses_no_byte():
    # Another process may leave O_NONBLOCK on a shared stdout: a write into the full one-page pipe
    # gets EAGAIN (it is full while the reader sleeps), which must wait for room, not fail or drop.
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
    os.set_blocking(w, False)
    data = bytes(range(256)) * 400  # 100 KiB: the pipe fills many times over
    got = bytearray()

    def read_slowly() -> None:
        time.sleep(0.2)
        while chunk := os.read(r, 1000):
            got.extend(chunk)

    reader = threading.Thread(target=read_slowly)
    reader.start()
    try:
        out = Output(w, "console", "raw")
        for i in range(0, len(data), 3000):
            out.write(data[i : i + 3000])
    finally:
        os.close(w)
        reader.join()
        os.close(r)
    assert bytes(got) == data


def test_a_nonblocking_socket_with_a_slow_reader_loses_no_byte():
    # A service manager's stdout is a unix socket; its send buffer here is smaller than the data.
    mine, theirs = socket.socketpair()
    mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    mine.setblocking(False)
    data = bytes(range(256)) * 800  # 200 KiB
    got = bytearray()

    def read_slowly() -> None:
        while chunk := theirs.recv(700):
            got.extend(chunk)
            time.sleep(0.0005)

    reader = threading.Thread(target=read_slowly)
    reader.start()
    try:
        out = Output(mine.fileno(), "console", "raw")
        for i in range(0, len(data), 4096):
            out.write(data[i : i + 4096])
    finally:
        mine.shutdown(socket.SHUT_WR)
        reader.join()
        mine.close()
        theirs.close()
    assert bytes(got) == data


def test_the_output_keeps_the_stream_it_writes_through(tmp_path):
    out = Output(open(tmp_path / "console.log", "wb"), "console", "raw")  # noqa: SIM115 - nobody else holds it
    gc.collect()  # the file object must not be closed under the Output (EBADF, or another file's fd)
    out.write(b"kept\n")
    assert (tmp_path / "console.log").read_bytes() == b"kept\n"


def test_a_sink_without_a_descriptor_and_the_modes():
    sink = io.BytesIO()
    out = Output(sink, "console", "auto")  # not a terminal: safe
    assert out.safe
    out.write(b"\x1b[2J::error::x\r")
    out.finish()
    assert sink.getvalue() == b"\\x1b[2J::error::x\\x0d"
    raw = io.BytesIO()
    Output(raw, "console", "raw").write(b"\x1b[2J")
    assert raw.getvalue() == b"\x1b[2J"
    text = io.StringIO()
    Output(text, "trace", "safe", text=True).write("trace: ü \x1b\n".encode())
    assert text.getvalue() == "trace: ü \\x1b\n"
    with pytest.raises(ValueError, match="output mode 'loud'"):
        Output(sink, "console", "loud")


def test_a_terminal_gets_raw_output_in_auto_mode():
    leader, follower = os.openpty()
    try:
        assert not Output(follower, "console", "auto").safe
        assert Output(follower, "console", "safe").safe
    finally:
        os.close(leader)
        os.close(follower)


# ---- every console of the runtime writes through it ----


def broken_pipe() -> tuple[Output, int]:
    r, w = os.pipe()
    os.close(r)
    return Output(w, "console", "safe"), w


def test_serial_console_renders_and_fails_through_the_output():
    sink = io.BytesIO()
    uart = Serial16550(0x3F8, Output(sink, "console", "safe"))
    for byte in b"\x1b[2J\n::error::x\n":
        uart.handle(Io("out", 1, 0x3F8, 1, bytes([byte]), 4096))  # type: ignore[arg-type]
    assert sink.getvalue() == b"\\x1b[2J\n\\x3a:error::x\n"
    out, w = broken_pipe()
    try:
        with pytest.raises(OutputError, match="EPIPE"):
            Serial16550(0x3F8, out).handle(Io("out", 1, 0x3F8, 1, b"A", 4096))  # type: ignore[arg-type]
    finally:
        os.close(w)


def test_hvterm_renders_and_fails_through_the_output():
    # A crafted ppc64le kvm_run: H_PUT_TERM_CHAR of 16 hostile bytes, then RTAS display-character.
    sink = io.BytesIO()
    vty = HvTerm(Output(sink, "console", "safe"), papr_buffers.VTY)
    papr = PaprHandlers(papr_buffers.SECTION, vty, FlatMemory(bytearray(1 << 16)))
    frame = papr_buffers.Frame("ppc64le").hcall(papr_buffers.opcode("H_PUT_TERM_CHAR"), papr_buffers.VTY, 16,
                                                *papr_buffers.chars(b"\x1b[J\n::error::x\r\n"))  # fmt: skip
    papr_buffers.serve(frame, papr)
    assert sink.getvalue() == b"\\x1b[J\n\\x3a:error::x\n"
    assert frame.get("papr_hcall.ret") == 0
    out, w = broken_pipe()
    try:
        papr = PaprHandlers(papr_buffers.SECTION, HvTerm(out, papr_buffers.VTY), None)
        frame = papr_buffers.Frame("ppc64le").hcall(papr_buffers.opcode("H_PUT_TERM_CHAR"), papr_buffers.VTY, 1,
                                                    *papr_buffers.chars(b"A"))  # fmt: skip
        with pytest.raises(OutputError, match="EPIPE"):  # up to the vCPU thread, which ends the run
            papr_buffers.serve(frame, papr)
    finally:
        os.close(w)


def test_byte_channel_renders_and_fails_through_the_output(proposed):  # noqa: F811 - the fixture
    sink = io.BytesIO()
    epapr = EpaprHandlers(epapr_buffers.SECTION, ByteChannel(Output(sink, "console", "safe"), 0), proposed)
    frame = epapr_buffers.Frame().hcall(epapr_buffers.SEND, 0, 12, *epapr_buffers.words(b"\x1b]0;x\x07##[warning]"))
    epapr_buffers.serve(frame, epapr, proposed)
    assert sink.getvalue() == b"\\x1b]0;x\\x07##\\x5bwar"
    out, w = broken_pipe()
    try:
        epapr = EpaprHandlers(epapr_buffers.SECTION, ByteChannel(out, 0), proposed)
        frame = epapr_buffers.Frame().hcall(epapr_buffers.SEND, 0, 1, *epapr_buffers.words(b"A"))
        with pytest.raises(OutputError, match="EPIPE"):
            epapr_buffers.serve(frame, epapr, proposed)
    finally:
        os.close(w)


def test_output_errors_name_the_errno():
    assert str(OutputError.of("trace", OSError(errno.EIO, "x"))) == "trace output failed: Input/output error (EIO)"
