"""The guest console's input: keys typed at the launcher's terminal, passed to the guest.

`TerminalInput(push).start()` does something only when stdin is a terminal: it puts the
terminal in raw mode (no line editing, no echo, no CR/LF translation; signals stay on, so
Ctrl-C still ends the run with status 130) and reads it in a daemon thread, handing each
chunk to `push` (the console device's `receive`). `stop()` restores the terminal's modes
exactly as they were, whatever ended the run; it is idempotent. Input from a pipe or file is
not read: a launcher in CI must not consume its caller's stdin. Tests: tests/kvm/test_terminal.py.
"""

from __future__ import annotations

import os
import select
import threading

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable

CHUNK = 256


class TerminalInput:
    def __init__(self, push: Callable[[bytes], None], fd: int = 0) -> None:
        self.push = push
        self.fd = fd
        self.saved: list | None = None  # termios attributes to restore
        self.thread: threading.Thread | None = None
        self.wake_r = self.wake_w = -1

    def start(self) -> bool:
        """Raw mode and the reader thread, when stdin is a terminal; False otherwise."""
        try:
            if not os.isatty(self.fd):
                return False
            import termios
        except (OSError, ImportError):
            return False
        self.saved = termios.tcgetattr(self.fd)
        raw = termios.tcgetattr(self.fd)
        raw[0] &= ~(termios.ICRNL | termios.IXON | termios.INLCR | termios.IGNCR)  # iflag: bytes as typed
        raw[3] &= ~(termios.ICANON | termios.ECHO | termios.IEXTEN)  # lflag: no line editing or echo; ISIG kept
        raw[6][termios.VMIN], raw[6][termios.VTIME] = 1, 0
        termios.tcsetattr(self.fd, termios.TCSANOW, raw)
        self.wake_r, self.wake_w = os.pipe()
        self.thread = threading.Thread(target=self._read, name="console-input", daemon=True)
        self.thread.start()
        return True

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self.fd, self.wake_r], [], [])
            if self.wake_r in ready:
                return
            try:
                data = os.read(self.fd, CHUNK)
            except OSError:
                return
            if not data:
                return
            self.push(data)

    def stop(self) -> None:
        """Restore the terminal and end the reader (idempotent)."""
        if self.saved is not None:
            import termios

            saved, self.saved = self.saved, None
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)
            except OSError:
                pass
        if self.wake_w >= 0:
            os.write(self.wake_w, b"x")
            if self.thread is not None:
                self.thread.join(1.0)
            for fd in (self.wake_r, self.wake_w):
                os.close(fd)
            self.wake_r = self.wake_w = -1
