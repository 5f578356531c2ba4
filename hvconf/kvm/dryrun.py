"""The dry run: the plan's steps as the launcher would issue them, one line each.

`lines(plan)` never opens /dev/kvm or imports cffi. Line format (parsed
back by tests, so keep it stable):
    <fd>  <ioctl>  0x<request, 8 hex digits>  <args: compact JSON, sorted keys>  # <source>
Tests: tests/kvm/test_runtime.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def line(fd: str, ioctl: str, request: int, args: Mapping[str, Any], source: str | None) -> str:
    """One step as text."""
    encoded = json.dumps(args, sort_keys=True, separators=(",", ":"))
    return f"{fd}  {ioctl}  0x{request:08x}  {encoded}  # {source}"


def lines(plan: Mapping[str, Any]) -> list[str]:
    """One line per plan step, in order; PlanError for a plan hvconf.contract.read_plan refuses."""
    from hvconf.contract import read_plan

    return [line(s.fd, s.ioctl, s.request, s.args, s.source) for s in read_plan(plan).steps]
