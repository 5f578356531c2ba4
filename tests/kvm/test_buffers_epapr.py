"""ePAPR hypercalls through the proposed KVM_EXIT_EPAPR_HCALL, on kvm_run buffers as an e500 kernel fills them.

An e500 host is big-endian, so every kvm_run field is too. The proposed
member {nr, ret, args[8]} sits at the exit union; its offsets come from
hvconf/abi/data/proposed.toml and its exit number from an overrides file,
the only place such numbers may come from (the proposal was never merged: docs/kernel-facts.md#the-unmerged-epapr-proposal).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import hvconf.abi
from hvconf.abi.tables import raw
from hvconf.kvm import exits
from hvconf.kvm.console_hv import ByteChannel, hv_console
from hvconf.kvm.hcall import EpaprHandlers, Outcome, Reply, complete, handlers_for

ARCH = "ppc-e500"
MMAP = 3 * 4096
EPAPR_EXIT, VM_RESET, VM_SHUTDOWN = 50, 13, 14  # as a patched kernel's headers might number them
SEND, RECEIVE, POLL = 0x10001, 0x10002, 0x10003  # EV_HCALL_TOKEN(1..3)
KVM_HCALL = 42 << 16  # KVM_HCALL_TOKEN(n) = EV_KVM_VENDOR_ID << 16 | n
EV = {"EV_SUCCESS": 0, "EV_EINVAL": 8, "EV_UNIMPLEMENTED": 12}
SECTION = {"exits": ["KVM_HC_VM_RESET", "KVM_HC_VM_SHUTDOWN"], "unknown": "EV_UNIMPLEMENTED"}
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "e500" / "e500" / "plan.json"


@pytest.fixture
def proposed(tmp_path):
    path = tmp_path / "patched-kernel.toml"
    path.write_text(f"[numbers]\nKVM_EXIT_EPAPR_HCALL = {EPAPR_EXIT}\nKVM_HC_VM_RESET = {VM_RESET}\n"
                    f"KVM_HC_VM_SHUTDOWN = {VM_SHUTDOWN}\nKVM_CAP_EXIT_EPAPR_HCALL = 250\n")  # fmt: skip
    return hvconf.abi.proposed(path)


class Frame:
    """An e500 kvm_run (big-endian) with the proposed epapr_hcall member at the exit union."""

    def __init__(self) -> None:
        self.buf = bytearray(MMAP)
        union = hvconf.abi.struct_fields("kvm_run", ARCH)["hw"].offset
        self.member = {f["name"]: union + f["offset"] for f in raw("proposed")["epapr_hcall"]["fields"]}
        self.reason_at = hvconf.abi.struct_fields("kvm_run", ARCH)["exit_reason"].offset

    def _put(self, at: int, value: int, width: int = 8) -> None:
        self.buf[at : at + width] = (value % (1 << 8 * width)).to_bytes(width, "big")

    def get(self, name: str, index: int = 0) -> int:
        at = self.member[name] + 8 * index
        return int.from_bytes(self.buf[at : at + 8], "big")

    def hcall(self, token: int, *args: int) -> Frame:
        self._put(self.reason_at, EPAPR_EXIT, 4)
        self._put(self.member["nr"], token)
        self._put(self.member["ret"], 0xA5A5A5A5A5A5A5A5)
        for i, value in enumerate(args):
            self._put(self.member["args"] + 8 * i, value)
        return self

    def span(self, name: str, index: int = 0) -> set[int]:
        at = self.member[name] + 8 * index
        return set(range(at, at + 8))


def serve(frame: Frame, handlers: EpaprHandlers, proposed):
    before = bytes(frame.buf)
    run = exits.KvmRun(frame.buf, ARCH, proposed)
    ex = run.decode()
    assert isinstance(ex, exits.EpaprHcall)
    reply = handlers.handle(ex)
    complete(run, ex, reply)
    return reply, {i for i in range(MMAP) if before[i] != frame.buf[i]}


def words(text: bytes) -> list[int]:
    padded = text.ljust(16, b"\0")
    return [int.from_bytes(padded[i : i + 4], "big") for i in range(0, 16, 4)]


@pytest.fixture
def out():
    return io.BytesIO()


@pytest.fixture
def epapr(out, proposed):
    return EpaprHandlers(SECTION, ByteChannel(out, 0), proposed)


def test_without_a_number_the_exit_is_unknown(proposed):
    frame = Frame().hcall(SEND, 0, 1)
    assert exits.decode(frame.buf, ARCH) == exits.Unknown(EPAPR_EXIT)
    ex = exits.decode(frame.buf, ARCH, proposed)
    assert ex == exits.EpaprHcall(SEND, (0, 1, 0, 0, 0, 0, 0, 0))


def test_send_writes_the_bytes_and_returns_the_count_in_r4(out, epapr, proposed):
    frame = Frame().hcall(SEND, 0, 5, *words(b"hello"))
    reply, changed = serve(frame, epapr, proposed)
    assert out.getvalue() == b"hello"
    assert (frame.get("ret"), frame.get("args", 1)) == (EV["EV_SUCCESS"], 5)
    assert changed <= frame.span("ret")  # r4 already held 5: nothing else moves
    assert frame.buf[frame.member["ret"] : frame.member["ret"] + 8] == bytes(8)


def test_send_uses_only_the_low_word_of_each_register(out, epapr, proposed):
    serve(Frame().hcall(SEND, 0, 8, 0xFFFF_FFFF_4142_4344, 0x1234_5678_4546_4748), epapr, proposed)
    assert out.getvalue() == b"ABCDEFGH"


@pytest.mark.parametrize(("handle", "count"), [(0, 17), (0, 1 << 40), (1, 1), (0xFFFF_FFFF, 0)])
def test_send_refuses_long_writes_and_unknown_handles(handle, count, out, epapr, proposed):
    frame = Frame().hcall(SEND, handle, count, *words(b"x" * 16))
    reply, changed = serve(frame, epapr, proposed)
    assert frame.get("ret") == EV["EV_EINVAL"] and out.getvalue() == b""
    assert changed <= frame.span("ret")


def test_receive_returns_count_and_four_packed_words(epapr, proposed):
    epapr.channel.feed(b"hi")
    frame = Frame().hcall(RECEIVE, 0, 16, 0x77, 0x77, 0x77, 0x77)
    serve(frame, epapr, proposed)
    assert frame.get("ret") == 0
    assert [frame.get("args", i) for i in range(1, 6)] == [2, 0x68690000, 0, 0, 0]


def test_receive_honours_the_requested_count(epapr, proposed):
    epapr.channel.feed(b"xyz")
    frame = Frame().hcall(RECEIVE, 0, 1)
    serve(frame, epapr, proposed)
    assert (frame.get("args", 1), frame.get("args", 2)) == (1, ord("x") << 24)
    frame = Frame().hcall(POLL, 0)
    serve(frame, epapr, proposed)
    assert (frame.get("ret"), frame.get("args", 1)) == (0, 2)  # r4 = bytes still waiting
    assert frame.get("args", 2) > 0  # r5 = transmit space


@pytest.mark.parametrize(("number", "outcome"), [(VM_RESET, Outcome.RESET), (VM_SHUTDOWN, Outcome.POWER_OFF)])
def test_vm_reset_and_shutdown_end_the_run(number, outcome, epapr, proposed):
    frame = Frame().hcall(KVM_HCALL | number)
    reply, _ = serve(frame, epapr, proposed)
    assert (reply.outcome, frame.get("ret")) == (outcome, EV["EV_SUCCESS"])


@pytest.mark.parametrize("token", [0x10004, 0x10010, KVM_HCALL | 3, KVM_HCALL | 15, 0, 1 << 63])
def test_unknown_tokens_are_unimplemented(token, epapr, proposed):
    frame = Frame().hcall(token, 1, 2, 3)
    reply, changed = serve(frame, epapr, proposed)
    assert frame.get("ret") == EV["EV_UNIMPLEMENTED"] and reply.outcome is Outcome.CONTINUE
    assert changed <= frame.span("ret")


def test_unnumbered_proposals_get_no_token(out, proposed):
    bare = EpaprHandlers(SECTION, ByteChannel(out), None)
    assert bare.unnumbered == ["KVM_HC_VM_RESET", "KVM_HC_VM_SHUTDOWN"]
    frame = Frame().hcall(KVM_HCALL | VM_RESET)
    reply, _ = serve(frame, bare, proposed)
    assert frame.get("ret") == EV["EV_UNIMPLEMENTED"] and reply.outcome is Outcome.CONTINUE


def test_byte_channel_without_a_console_is_einval(proposed):
    frame = Frame().hcall(SEND, 0, 1)
    serve(frame, EpaprHandlers(SECTION, None, proposed), proposed)
    assert frame.get("ret") == EV["EV_EINVAL"]


def test_outputs_beyond_r10_are_refused(proposed):
    run = exits.KvmRun(Frame().hcall(SEND).buf, ARCH, proposed)
    ex = run.decode()
    with pytest.raises(ValueError, match="r4..r10"):
        complete(run, ex, Reply(0, {11: 1}))
    with pytest.raises(ValueError):
        complete(run, ex, Reply(0, {3: 1}))  # r3 is `ret`


def test_the_compilers_e500_plan_builds_its_table(out, proposed):
    plan = json.loads(GOLDEN.read_text())
    table = handlers_for(plan["launcher"], console=hv_console(plan["console"], out), proposed=proposed)
    assert isinstance(table, EpaprHandlers)
    assert sorted(table.token2name) == [SEND, RECEIVE, POLL, KVM_HCALL | VM_RESET, KVM_HCALL | VM_SHUTDOWN]
    serve(Frame().hcall(SEND, 0, 3, *words(b"e5\n")), table, proposed)
    assert out.getvalue() == b"e5\n"


@pytest.mark.parametrize(("reason", "member", "value", "width"), [
    (6, "mmio.len", 9, 4), (6, "mmio.len", 0xFFFF_FFFF, 4), (24, "system_event.ndata", 1 << 20, 4)])  # fmt: skip
def test_malformed_e500_buffers_raise_bad_exit(reason, member, value, width, proposed):
    frame = Frame()
    frame._put(frame.reason_at, reason, 4)
    frame._put(hvconf.abi.struct_fields("kvm_run", ARCH)[member].offset, value, width)
    with pytest.raises(exits.BadExit):
        exits.decode(frame.buf, ARCH, proposed)
