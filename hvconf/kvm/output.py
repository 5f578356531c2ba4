"""A run's output streams: guest console bytes made harmless, and writes no reader can wedge.

`SafeText` renders a byte stream as plain text (the `safe` console, and
every trace line): a hostile guest cannot drive the terminal or the CI log
that shows its output. Streaming and stateful, because a 16550 guest sends
one byte per exit:
- LF and TAB pass; CR LF becomes LF; every other C0 control, a lone CR,
  DEL and bytes that are not UTF-8 become `\\xNN` (ESC too, so no escape
  sequence reaches a terminal); C1 controls (U+0080-U+009F: U+009B is CSI
  to a terminal), the Unicode bidirectional controls (CVE-2021-42574) and
  invisible format characters become `\\uNNNN`;
- CI log commands are no commands: a line whose first non-blank
  characters are `::` (GitHub Actions: actions/runner
  src/Runner.Common/ActionCommand.cs, TryParseV2 trims leading blanks)
  starts with `\\x3a:`, and the `[` of `##[`, `##vso[` or `##teamcity[`
  anywhere in a line (TryParse looks anywhere; Azure Pipelines and
  TeamCity alike) becomes `\\x5b`.
Valid UTF-8 text otherwise passes unchanged; a backslash is not escaped
(the rendering is for reading; `--console raw` keeps the exact bytes).

`Output` writes to a file descriptor (or, in tests, to any stream) and
turns every write error into one OutputError ("console output failed:
Broken pipe (EPIPE)"), raised again on later writes. A descriptor that can
block (pipe, socket, terminal) is polled before a blocking write, so a reader
that stops reading holds the writer only until `stopping()` says the run is
ending (the watchdog, a signal, another vCPU's end); EAGAIN, on a file someone
left O_NONBLOCK, waits for room the same way instead of failing or dropping
bytes; EINTR (the watchdog's kicks) is retried by Python. (poll calls a
pipe writable while one of its pages is free: a blocking pipe shrunk to one
page with F_SETPIPE_SZ gets one write each time its reader empties it.)
Thread-safe.
Tests: tests/kvm/test_output.py, tests/kvm/test_hostile_guests.py.
"""

from __future__ import annotations

import _thread  # threading's Lock is _thread.allocate_lock; importing threading costs a launch ~1 ms
import codecs
import errno
import os
import stat
import time

from hvconf.kvm.options import CONSOLE_MODES

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

WAIT_MS = 50  # a blocked writer looks at stopping() this often
CHUNK = 4096  # PIPE_BUF: a write this size into a pipe that polled writable does not block

# Code points rendered as \uNNNN besides C0/DEL/C1: bidirectional controls (Unicode UAX #9) and
# invisible format characters that could hide or reorder text.
HIDDEN = "\u061c\u180e\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff"


def _escapes() -> dict[int, str]:
    table = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F) if c not in (0x09, 0x0A)}  # CR: lone ones only
    table.update({c: f"\\u{c:04x}" for c in range(0x80, 0xA0)})
    table.update({ord(c): f"\\u{ord(c):04x}" for c in HIDDEN})
    table.update({0xDC00 + b: f"\\x{b:02x}" for b in range(0x80, 0x100)})  # bytes that are not UTF-8
    return table


ESCAPES = _escapes()  # for str.translate
MARKER_LETTERS = 16  # `##` + up to this many letters + `[` is a log command (`##teamcity[` has 8)
PLAIN = bytes(range(0x20, 0x7F)).replace(b"[", b"")  # printable ASCII that needs no look inside the line


class SafeText:
    """The `safe` rendering of one byte stream; `feed(bytes) -> bytes`, then `finish() -> bytes`."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._held = ""  # a CR or a line-start `:` waiting for the character after it
        self._blank = True  # the current line, as rendered so far, is all blanks
        self._tail = ""  # the current line's last rendered characters, for `##...[` across feeds

    def feed(self, data: bytes | bytearray) -> bytes | bytearray:
        if not self._blank and not self._held and not self._decoder.buffer and not data.translate(None, PLAIN):
            # the common case, a byte of text inside a line: itself (a quarter of the general path's cost)
            self._tail = (self._tail + data.decode("ascii"))[-(MARKER_LETTERS + 2) :]
            return data
        return self._render(self._held + self._decoder.decode(data), final=False)

    def finish(self) -> bytes:
        """What was held back for the next character: the stream has ended."""
        return self._render(self._held + self._decoder.decode(b"", True), final=True)

    def _render(self, text: str, final: bool) -> bytes:
        self._held = ""
        if not final and text.endswith("\r"):  # CR LF or a lone CR: the next feed decides
            text, self._held = text[:-1], "\r"
        text = text.replace("\r\n", "\n").translate(ESCAPES)  # lone CRs are escaped by the table
        lines = text.split("\n")
        out = []
        for i, line in enumerate(lines):
            if i:
                self._blank, self._tail = True, ""
            last = i == len(lines) - 1
            out.append(self._line(line, last and not final))
        return "\n".join(out).encode("utf-8", "surrogateescape")

    def _line(self, text: str, open_ended: bool) -> str:
        """One line's piece; `open_ended`: more of the same line may follow in the next feed."""
        if self._blank:
            rest = text.lstrip()
            if rest.startswith("::"):
                start = len(text) - len(rest)
                text = f"{text[:start]}\\x3a{text[start + 1:]}"
            elif rest == ":" and open_ended:  # `::` may be completed by the next feed
                text, self._held = text[:-1], ":" + self._held
            self._blank = not text.strip()
        if "[" in text:
            text = self._unmark(text)
        self._tail = (self._tail + text)[-(MARKER_LETTERS + 2):]
        return text

    def _unmark(self, text: str) -> str:
        context = self._tail + text
        pieces, start = [], 0
        for at in (i for i, c in enumerate(text) if c == "["):
            j = len(self._tail) + at
            letters = j
            while letters > 0 and j - letters < MARKER_LETTERS and context[letters - 1].isalpha():
                letters -= 1
            if context[letters - 2 : letters] == "##":
                pieces += [text[start:at], "\\x5b"]
                start = at + 1
        return "".join(pieces) + text[start:] if pieces else text


class OutputError(Exception):
    """Writing a run's console or trace failed: `what` output failed, and why, in one line."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(what, reason)
        self.what, self.reason = what, reason

    @classmethod
    def of(cls, what: str, err: BaseException) -> OutputError:
        number = getattr(err, "errno", None)
        if number:
            return cls(what, f"{os.strerror(number)} ({errno.errorcode.get(number, number)})")
        return cls(what, str(err) or type(err).__name__)  # ValueError: I/O operation on closed file

    def __str__(self) -> str:
        return f"{self.what} output failed: {self.reason}"


def _never() -> bool:
    return False


class Output:
    """Bytes to `stream` (a file object, an fd, or None for a closed stream), `mode` raw/safe/auto.

    A stream with a file descriptor is flushed once and then written through the descriptor;
    one without (io.BytesIO, io.StringIO when `text`) through its write(). `stopping` is set by
    the run: while it answers False a blocked write waits.
    """

    def __init__(self, stream: Any, what: str, mode: str = "raw", *, text: bool = False) -> None:
        if mode not in CONSOLE_MODES:
            raise ValueError(f"output mode {mode!r} is not one of {', '.join(CONSOLE_MODES)}")
        self.what = what
        self.stopping: Callable[[], bool] = _never
        self.failed: OutputError | None = None
        self.blocked_since: float | None = None  # monotonic time a write began waiting for the reader
        self._lock = _thread.allocate_lock()
        self._text = text
        self._stream = stream  # held: a file object's fd lives as long as the object
        self._sink: Any = None
        self._fd: int | None = None
        self._poll: Any = None  # select.poll() for a descriptor that can block
        try:
            self._attach(stream)
        except (OSError, ValueError) as err:
            self.failed = OutputError.of(what, err)
        tty = self._fd is not None and self.failed is None and os.isatty(self._fd)
        self.safe = mode == "safe" or (mode == "auto" and not tty)
        self._render = SafeText() if self.safe else None

    def _attach(self, stream: Any) -> None:
        if stream is None:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        if isinstance(stream, int):
            fd = stream
        else:
            try:
                fd = stream.fileno()
            except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
                self._sink = stream
                return
            stream.flush()  # what was written through the object goes first
        info = os.fstat(fd)
        # Regular files and the memory devices (major 1, drivers/char/mem.c: /dev/null, /dev/full)
        # never make a writer wait: no poll, and no import of select.
        if not stat.S_ISREG(info.st_mode) and not (stat.S_ISCHR(info.st_mode) and os.major(info.st_rdev) == 1):
            import select

            self._poll = select.poll()
            self._poll.register(fd, select.POLLOUT)
        self._fd = fd

    def write(self, data: bytes | bytearray) -> int:
        with self._lock:
            if self.failed is not None:
                raise self.failed
            try:
                self._send(self._render.feed(data) if self._render is not None else data)
            except (OSError, ValueError) as err:
                self.failed = OutputError.of(self.what, err)
                raise self.failed from None
        return len(data)

    def flush(self) -> None:
        """Nothing to do: every write is sent at once (stream interface for the consoles)."""

    def finish(self) -> None:
        """Send what the safe rendering held back (a CR, a `:`, part of a UTF-8 character)."""
        if self._render is not None:
            with self._lock:
                tail, self._render = self._render.finish(), SafeText()
                if tail and self.failed is None:
                    try:
                        self._send(tail)
                    except (OSError, ValueError) as err:
                        self.failed = OutputError.of(self.what, err)
                        raise self.failed from None

    def _send(self, data: bytes | bytearray) -> None:
        if self._fd is None:
            self._to_sink(data)
            return
        if self._poll is None and len(data) <= CHUNK:  # a regular file or /dev/null: one write, as a rule
            sent = os.write(self._fd, data)
            if sent == len(data):
                return
            data = data[sent:]
        view = memoryview(data)
        while view:
            # A blocking write could not be interrupted (Python retries it after each kick), so it waits
            # for poll(2) first. On an O_NONBLOCK file it is tried at once: poll calls a pipe writable
            # only while a whole page is free, a write may still fit in the last one.
            if self._poll is not None and not self._poll.poll(0) and os.get_blocking(self._fd) and not self._wait():
                return  # the run is ending and nobody reads: the rest is dropped
            try:
                view = view[os.write(self._fd, view[:CHUNK]) :]
            except BlockingIOError:  # O_NONBLOCK, set by whoever shares the file: wait for room, then again
                if self._poll is None:
                    import select

                    self._poll = select.poll()
                    self._poll.register(self._fd, select.POLLOUT)
                if not self._wait():
                    return

    def _wait(self) -> bool:
        """True once the descriptor takes a write (or has an error the write will report); False when
        the run ends first."""
        self.blocked_since = time.monotonic()
        try:
            while not self._poll.poll(WAIT_MS):
                if self.stopping():
                    return False
            return True
        finally:
            self.blocked_since = None

    def _to_sink(self, data: bytes | bytearray) -> None:
        if self._text:
            self._sink.write(data.decode("utf-8", "surrogateescape"))
        else:
            while data:
                sent = self._sink.write(data)
                data = data[sent:] if isinstance(sent, int) and 0 < sent < len(data) else b""
        self._sink.flush()
