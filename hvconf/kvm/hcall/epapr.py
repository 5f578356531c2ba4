"""ePAPR hypercalls that reach the launcher through the proposed KVM_EXIT_EPAPR_HCALL
(docs/kernel-facts.md#the-unmerged-epapr-proposal).

Dispatch by token (r11): the byte channel console (EV_BYTE_CHANNEL_SEND,
_RECEIVE, _POLL: r3 handle, r4 count, r5..r8 four bytes each, big-endian in
the low word, as Linux's epapr_hcalls.h packs them) and the proposal's
KVM_HC_VM_RESET / KVM_HC_VM_SHUTDOWN, whose tokens exist only when an
overrides file numbers them. Anything else answers the plan's `unknown`
(EV_UNIMPLEMENTED, as KVM does). Issues no ioctl.
Tests: tests/kvm/test_buffers_epapr.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import hvconf.abi
from hvconf.abi.hcalls import epapr_data
from hvconf.kvm import exits
from hvconf.kvm.console_hv import MAX_BYTES, ByteChannel
from hvconf.kvm.hcall.reply import Outcome, Reply

TX_SPACE = 4096  # what POLL reports free: output is written synchronously, the queue never fills
WORD = 0xFFFF_FFFF
BYTE_CHANNEL = ("EV_BYTE_CHANNEL_SEND", "EV_BYTE_CHANNEL_RECEIVE", "EV_BYTE_CHANNEL_POLL")


class EpaprHandlers:
    """The launcher's ePAPR table. Attributes: `token2name`, `unknown` (its status code),
    `unnumbered` (proposed hcalls the plan routes here that have no number, hence no token)."""

    def __init__(
        self,
        section: Mapping[str, Any],
        channel: ByteChannel | None = None,
        proposed: hvconf.abi.ProposedAbi | None = None,
    ) -> None:
        data = epapr_data()
        self.status = data["status"]
        self.unknown = self.status[section.get("unknown", "EV_UNIMPLEMENTED")]
        self.channel = channel
        names = [*section.get("handlers", BYTE_CHANNEL), *section.get("exits", ())]
        missing = sorted(set(names) - set(IMPLEMENTATIONS))
        if missing:
            raise ValueError(f"the plan wants ePAPR handlers this launcher does not have: {', '.join(missing)}")
        kvm_vendor = data["vendors"]["EV_KVM_VENDOR_ID"] << data["token_vendor_shift"]
        self.token2name: dict[int, str] = {}
        self.unnumbered: list[str] = []
        for name in names:
            if name in BYTE_CHANNEL:
                self.token2name[hvconf.abi.epapr_token(name).token] = name
                continue
            number = proposed.number(name) if proposed is not None else None
            if number is None:
                self.unnumbered.append(name)
            else:
                self.token2name[kvm_vendor | number] = name  # KVM_HCALL_TOKEN(number)

    def handle(self, ex: exits.EpaprHcall) -> Reply:
        name = self.token2name.get(ex.nr)
        if name is None:
            return Reply(self.unknown, note=f"ePAPR token {ex.nr:#x} has no handler in the launcher")
        return IMPLEMENTATIONS[name](self, ex.args)

    def _channel(self, handle: int) -> ByteChannel | None:
        return self.channel if self.channel is not None and self.channel.owns(handle) else None

    def send(self, args: tuple[int, ...]) -> Reply:
        handle, count = args[0], args[1]
        channel = self._channel(handle)
        if channel is None or count > MAX_BYTES:
            return Reply(self.status["EV_EINVAL"], note=f"EV_BYTE_CHANNEL_SEND handle {handle:#x} count {count}")
        channel.write(b"".join((w & WORD).to_bytes(4, "big") for w in args[2:6])[:count])
        return Reply(self.status["EV_SUCCESS"], {4: count})

    def receive(self, args: tuple[int, ...]) -> Reply:
        handle, count = args[0], args[1]
        channel = self._channel(handle)
        if channel is None:
            return Reply(self.status["EV_EINVAL"], note=f"EV_BYTE_CHANNEL_RECEIVE handle {handle:#x}")
        taken = channel.read(min(count, MAX_BYTES))
        data = taken.ljust(MAX_BYTES, b"\0")
        words = {5 + i: int.from_bytes(data[4 * i : 4 * i + 4], "big") for i in range(4)}
        return Reply(self.status["EV_SUCCESS"], {4: len(taken), **words})

    def poll(self, args: tuple[int, ...]) -> Reply:
        channel = self._channel(args[0])
        if channel is None:
            return Reply(self.status["EV_EINVAL"], note=f"EV_BYTE_CHANNEL_POLL handle {args[0]:#x}")
        return Reply(self.status["EV_SUCCESS"], {4: channel.pending, 5: TX_SPACE})

    def vm_reset(self, args: tuple[int, ...]) -> Reply:
        return Reply(self.status["EV_SUCCESS"], outcome=Outcome.RESET, note="KVM_HC_VM_RESET")

    def vm_shutdown(self, args: tuple[int, ...]) -> Reply:
        return Reply(self.status["EV_SUCCESS"], outcome=Outcome.POWER_OFF, note="KVM_HC_VM_SHUTDOWN")


IMPLEMENTATIONS: dict[str, Callable[[EpaprHandlers, tuple[int, ...]], Reply]] = {
    "EV_BYTE_CHANNEL_SEND": EpaprHandlers.send,
    "EV_BYTE_CHANNEL_RECEIVE": EpaprHandlers.receive,
    "EV_BYTE_CHANNEL_POLL": EpaprHandlers.poll,
    "KVM_HC_VM_RESET": EpaprHandlers.vm_reset,
    "KVM_HC_VM_SHUTDOWN": EpaprHandlers.vm_shutdown,
}
