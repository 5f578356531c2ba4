"""Exit statuses of a launcher, as data: how a run ended -> process status.

The numbers are part of the launcher's interface (scripts test them), so
they live in one table with a one-line meaning each. Nothing else here.
`Status` is a namespace of ints, not an IntEnum: importing enum cost
about 1.5 ms of every launch, for no behaviour the launcher uses.
Tests: tests/kvm/test_runtime.py.
"""

from __future__ import annotations


class Status:
    HALTED = 0  # every vCPU halted, or the guest powered off
    USAGE = 2  # bad command line, plan or image
    HOST = 3  # this host (or this runtime) cannot run the target
    TIMEOUT = 4  # the watchdog ended a guest that was still running
    GUEST_SHUTDOWN = 5  # the guest shut down: triple fault, reset or crash
    KVM_ERROR = 6  # a KVM ioctl failed
    KVM_INTERNAL = 7  # KVM internal error, failed entry, or an exit the runtime cannot handle
    OUTPUT = 8  # the console, the trace or a dry run could not be written (a closed pipe, a full disk)
    REBOOTED = 9  # the guest asked for a reboot and --on-reboot is exit (the default)
    INTERRUPTED = 130  # SIGINT (Ctrl-C), as shells report it
    TERMINATED = 143  # SIGTERM, as shells report it


MEANING: dict[int, str] = {
    Status.HALTED: "guest halted",
    Status.USAGE: "usage error",
    Status.HOST: "host cannot run the target",
    Status.TIMEOUT: "watchdog timeout",
    Status.GUEST_SHUTDOWN: "guest shut down",
    Status.KVM_ERROR: "KVM ioctl error",
    Status.KVM_INTERNAL: "KVM internal error or unhandled exit",
    Status.OUTPUT: "output failed",
    Status.REBOOTED: "guest rebooted",
    Status.INTERRUPTED: "interrupted",
    Status.TERMINATED: "terminated",
}

# The third item of an exit's outcome (status, reason, REBOOT): the guest asked for a reboot, which
# ends the run with REBOOTED, a status of its own (a script tells a reboot from a crash by it),
# unless the launcher was told to restart (--on-reboot restart).
REBOOT = "reboot"
ON_REBOOT = ("exit", "restart")  # --on-reboot; exit is the default
MAX_RESTARTS = 16  # a guest that reboots in a loop ends here, with REBOOTED

# KVM_SYSTEM_EVENT_* type -> status (linux/kvm.h); unlisted types are unhandled exits.
SYSTEM_EVENT_STATUS: dict[int, int] = {
    1: Status.HALTED,  # KVM_SYSTEM_EVENT_SHUTDOWN: powered off
    2: Status.GUEST_SHUTDOWN,  # KVM_SYSTEM_EVENT_RESET: a reboot (SYSTEM_EVENT_REBOOT)
    3: Status.GUEST_SHUTDOWN,  # KVM_SYSTEM_EVENT_CRASH
}
SYSTEM_EVENT_REBOOT = frozenset({2})  # the types that are a reboot: --on-reboot restart restarts them
