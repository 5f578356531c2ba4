"""CLI glue for host facts: the `hvconf host` command and `check --host` / `--host-facts`.

`register(subparsers)` adds `host`; `add_host_options(check_parser)` and
`host_facts_from_args(args)` give `check` its host options. The probe
(hvconf.kvm.probe) is imported only when a host is really probed: it is the
one path from the CLI into the runtime for linting. Nothing here checks a
VM (hvconf/check/host.py does). Tests: tests/test_host.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pydantic loads only when host facts are used
    from hvconf.model.host import HostFacts

EXIT_OK, EXIT_USAGE = 0, 2


HOST_EXAMPLES = """examples:
  hvconf host                                   what this host's KVM offers, readable
  hvconf host --format json > hosts/ci.json     save the facts for `hvconf check --host-facts`
  hvconf check --host-facts hosts/ci.json vms/  lint against a fleet's host without /dev/kvm
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add `hvconf host` to the top-level subparsers; returns its parser."""
    p = subparsers.add_parser("host", help="probe this host's KVM (caps, vCPU limit, PV features)",
                              description="Probe this host's KVM: API version, vCPU mmap size, every capability "
                                          "hvconf knows for the host arch on the system fd and on a VM fd, the "
                                          "supported PV feature bits. `--format json` writes host facts for "
                                          "`hvconf check --host-facts`.",
                              epilog=HOST_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--abi-overrides", metavar="FILE",
                   help="numbers of the unmerged ePAPR proposal this host's kernel uses (TOML): probe them too")
    p.add_argument("--timestamp", action="store_true", help="record when the probe ran (probed_at)")
    p.set_defaults(func=cmd_host)
    return p


def add_host_options(check_parser: argparse.ArgumentParser) -> None:
    """`--host` (probe this host) or `--host-facts FILE` (a saved probe) for `hvconf check`."""
    group = check_parser.add_mutually_exclusive_group()
    group.add_argument("--host", action="store_true",
                       help="also check each VM against this host's KVM (probes it; needs the KVM device)")
    group.add_argument("--host-facts", metavar="FILE",
                       help="also check each VM against a saved probe (`hvconf host --format json`)")


def host_facts_from_args(args: argparse.Namespace) -> "HostFacts | None":
    """The facts `check` should use: None without --host/--host-facts.

    Raises HostFactsError (a one-line message, for exit status 2) when the file
    cannot be read or is not valid, or this host cannot be probed.
    """
    if getattr(args, "host_facts", None):
        from hvconf.model.host import load_host_facts

        return load_host_facts(Path(args.host_facts))
    if getattr(args, "host", False):
        return probe_facts()
    return None


def probe_facts(proposed_overrides: Path | None = None, *, timestamp: bool = False) -> "HostFacts":
    """This host's facts, probed now; HostFactsError when the host cannot be probed."""
    from hvconf.abi import AbiError
    from hvconf.model.host import HostFactsError, host_facts

    try:
        from hvconf.kvm.ioctls.errors import KvmError
        from hvconf.kvm.probe import probe
    except ImportError as err:  # cffi missing: the compiler alone is installed
        raise HostFactsError(f"cannot probe this host: the KVM runtime is not usable here ({err})") from None
    try:
        data = probe(proposed_overrides=proposed_overrides, timestamp=timestamp)
    except OSError as err:
        raise HostFactsError(f"cannot probe this host: cannot open {err.filename or 'the KVM device'}: "
                             f"{err.strerror or err}") from None
    except (KvmError, AbiError) as err:
        raise HostFactsError(f"cannot probe this host: {err}") from None
    return host_facts(data, "the probe of this host")


def cmd_host(args: argparse.Namespace) -> int:
    from hvconf.model.host import HostFactsError, dumps, to_text

    overrides = Path(args.abi_overrides) if args.abi_overrides else None
    try:
        facts = probe_facts(overrides, timestamp=args.timestamp)
    except HostFactsError as err:
        print(f"hvconf: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(dumps(facts) if args.format == "json" else to_text(facts))
    return EXIT_OK
