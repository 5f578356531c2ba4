"""`hvconf targets` and `hvconf caps --target T`: what hvconf knows, as `qemu-system-ppc64
-machine help` and `-cpu help` list theirs.

`targets` lists each target (targets/<name>/target.toml) with its arches, KVM flavours, outputs,
consoles and limits; `caps` lists the KVM capabilities a target offers (its caps.toml, numbered
from hvconf.abi, the Linux uapi facts), with the fd they are enabled on, the flavours that have
them, their arguments and what they do. Both print text or, with --format json, one stable JSON
document. Nothing here reads a definition or opens a device. Tested by tests/test_targets_cli.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any
from hvconf.diagnostics import close_matches

if TYPE_CHECKING:
    from hvconf.model.target import Target
    from hvconf.model.target_toml import Cap

    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_OK, EXIT_USAGE = 0, 2

TARGETS_EXAMPLES = """examples:
  hvconf targets                       every target: arches, KVM flavours, outputs, consoles
  hvconf targets --format json         the same as one JSON document
"""

CAPS_EXAMPLES = """examples:
  hvconf caps --target ppc64-spapr                    every KVM_CAP_* a pseries VM may enable, and on which fd
  hvconf caps --target ppc64-spapr --flavour book3s_pr
  hvconf caps --target x86_64 --format json
"""


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def target_record(t: "Target") -> dict[str, Any]:
    return {"name": t.name, "description": t.description, "arches": list(t.arches), "flavours": list(t.flavours),
            "default_flavour": t.default_flavour, "outputs": list(t.outputs),
            "consoles": [c.name for c in t.consoles], "default_console": t.default_console,
            "presets": sorted(t.presets), "memory_min": t.memory.min, "memory_granularity": t.memory.granularity,
            "max_vcpus": t.limits.max_vcpus, "caps": len(t.caps), "hcalls": len(t.hcalls)}


def cap_record(cap: "Cap") -> dict[str, Any]:
    from hvconf import abi

    number = abi.caps()[cap.name].number if cap.name in abi.caps() else None
    return {"name": cap.name, "number": number, "fd": cap.scope, "flavours": list(cap.flavours or ()),
            "args": [a.name for a in cap.args], "managed": cap.managed, "required_for": list(cap.required_for),
            "proposed": cap.proposed, "doc": " ".join(cap.doc.split())}


def _targets() -> list["Target"]:
    from hvconf.model.target import load_target, target_names

    return [load_target(name) for name in target_names()]


def cmd_targets(args: argparse.Namespace) -> int:
    from hvconf.model.target_toml import size_text

    records = [target_record(t) for t in _targets()]
    if args.format == "json":
        sys.stdout.write(json.dumps({"targets": records}, indent=2) + "\n")
        return EXIT_OK
    width = max(len(r["name"]) for r in records)
    out = ["Targets (hvconf caps --target NAME lists a target's capabilities):"]
    for r in records:
        flavours = ", ".join(f + (" (default)" if f == r["default_flavour"] and len(r["flavours"]) > 1 else "")
                             for f in r["flavours"])
        out += [f"{r['name']:<{width}}  {r['description']}",
                f"{'':<{width}}  arch {', '.join(r['arches'])}; kvm {flavours}; outputs {', '.join(r['outputs'])}",
                f"{'':<{width}}  consoles {', '.join(r['consoles'])} (default {r['default_console']}); memory "
                f"from {size_text(r['memory_min'])} in steps of {size_text(r['memory_granularity'])}; "
                f"up to {r['max_vcpus']} vCPUs; "
                f"{r['caps']} caps, {r['hcalls']} hcalls"]
    sys.stdout.write("\n".join(out) + "\n")
    return EXIT_OK


def _unknown_target(name: str) -> int:

    from hvconf.model.target import target_names

    close = close_matches(name, target_names(), n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"targets are: {', '.join(target_names())}"
    print(f"hvconf caps: error: no target '{name}'; {hint}", file=sys.stderr)
    return EXIT_USAGE


def cmd_caps(args: argparse.Namespace) -> int:
    from hvconf.model.target import load_target, target_names

    if args.target not in target_names():
        return _unknown_target(args.target)
    target = load_target(args.target)
    if args.flavour is not None and args.flavour not in target.flavours:
        print(f"hvconf caps: error: target {target.name} has no flavour '{args.flavour}'; flavours are: "
              f"{', '.join(target.flavours)}", file=sys.stderr)
        return EXIT_USAGE
    caps = [c for c in target.caps if args.flavour is None or args.flavour in (c.flavours or target.flavours)]
    records = [cap_record(c) for c in sorted(caps, key=lambda c: c.name)]
    if args.format == "json":
        sys.stdout.write(json.dumps({"target": target.name, "flavour": args.flavour, "caps": records}, indent=2)
                         + "\n")
        return EXIT_OK
    width = max((len(r["name"]) for r in records), default=0)
    what = f" with kvm {args.flavour}" if args.flavour else ""
    out = [f"Capabilities of target {target.name}{what} (`cap NAME [on vm|vcpus|vcpu N]`; "
           "fd: where KVM_ENABLE_CAP takes it, check: only checked on the host):"]
    for r in records:
        number = "proposed" if r["number"] is None else str(r["number"])
        notes = [f"kvm {', '.join(r['flavours'])}"] if set(r["flavours"]) != set(target.flavours) else []
        notes += [f"args {', '.join(r['args'])}"] if r["args"] else []
        notes += [f"written from `{r['managed']}`"] if r["managed"] else []
        notes += [f"required for {', '.join(r['required_for'])}"] if r["required_for"] else []
        out.append(f"{r['name']:<{width}}  {number:>8}  {r['fd']:<5}  {_first_sentence(r['doc'])}"
                   + (f" [{'; '.join(notes)}]" if notes else ""))
    sys.stdout.write("\n".join(out) + "\n")
    return EXIT_OK


def register(sub: "SubParsers") -> None:
    """Add `targets` and `caps` to the `hvconf` subparsers."""
    raw = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("targets", help="list the targets hvconf knows (arches, KVM flavours, outputs)",
                       description="List the targets hvconf knows: arches, KVM flavours, outputs, consoles, limits.",
                       epilog=TARGETS_EXAMPLES, formatter_class=raw)
    p.add_argument("--format", choices=["text", "json"], default="text", help="output format (default: text)")
    p.set_defaults(func=cmd_targets)

    p = sub.add_parser("caps", help="list the KVM capabilities a target offers",
                       description="List the KVM_CAP_* a target offers: number, the fd KVM_ENABLE_CAP takes it on,\n"
                                   "flavours, arguments and what it does.", epilog=CAPS_EXAMPLES, formatter_class=raw)
    # a name, not `choices`, so that a typo gets a did-you-mean; completion offers the names (METAVAR_WORDS)
    p.add_argument("--target", required=True, metavar="TARGET", help="a target (hvconf targets lists them)")
    p.add_argument("--flavour", metavar="FLAVOUR", help="only the caps of this KVM flavour (e.g. book3s_pr)")
    p.add_argument("--format", choices=["text", "json"], default="text", help="output format (default: text)")
    p.set_defaults(func=cmd_caps)


__all__ = ["cap_record", "cmd_caps", "cmd_targets", "register", "target_record"]
