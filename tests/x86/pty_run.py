"""Run a launcher on a pseudo-terminal, as a user at a terminal would, and type one line once the guest
asks: `python3 pty_run.py STDERR_FILE COMMAND...`. The launcher sees a terminal on stdin and stdout
(so it puts it in raw mode and passes what is typed to the guest's 16550); its stderr goes to
STDERR_FILE. What the guest printed is copied to stdout without its CRs; the
exit status is the launcher's. Standard library only: it runs inside the emulated x86_64 host
(tests/x86/x86_cases.py, the `linux` case).
"""

from __future__ import annotations

import os
import pty
import sys

# what linux_initrd.py's /init prints before it reads a line, to its end (the guest's tty ends lines with
# CR LF): typed earlier, the guest's echo of it would land inside the prompt's line
PROMPT = b"@@L2 ready\r"
TYPED = b"typed through hvconf\r"  # a terminal sends CR for Enter; the guest's tty makes it a newline


def main(argv: list[str]) -> int:
    stderr, command = argv[0], argv[1:]
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its stdin, stdout and (until here) stderr
        err = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(err, 2)
        os.execvp(command[0], command)
    seen = b""
    typed = False
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen = (seen + chunk)[-4096:]
        sys.stdout.buffer.write(chunk.replace(b"\r", b""))
        sys.stdout.buffer.flush()
        if not typed and PROMPT in seen:
            os.write(fd, TYPED)
            typed = True
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
