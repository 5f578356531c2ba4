"""sPAPR hcalls end to end on kvm_run buffers laid out as a ppc64le (and a ppc64) kernel lays them out.

PowerPC cannot run here, so each test builds the mmap by hand from
hvconf.abi's offsets (not the cdefs under test), in the host's byte order
(little-endian kvm_run on ppc64le), with big-endian guest data (term chars in
registers, RTAS blocks in guest memory); then decode, handle, complete, and
assert the exact bytes the kernel reads back on the next KVM_RUN.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

import hvconf.abi
from hvconf.kvm.ioctls import kvm_run
from hvconf.kvm.powerpc.consoles import HvTerm, hv_console
from hvconf.kvm.guest_phys import FlatMemory, Slots
from hvconf.kvm.powerpc.hypercalls import PaprHandlers, complete, handlers_for
from hvconf.kvm.reply import Outcome
from hvconf.kvm.guest_phys import GuestAccessError

MMAP = 3 * 4096
ORDER = {"ppc64le": "little", "ppc64": "big"}
VTY = 0x30000000
H = {"H_SUCCESS": 0, "H_FUNCTION": -2, "H_PARAMETER": -4, "H_P3": -56, "H_UNSUPPORTED_FLAG": -256}  # hvcall.h
RTAS = {"display-character": 0x2000, "get-time-of-day": 0x2001, "power-off": 0x2003, "system-reboot": 0x2004,
        "start-cpu": 0x2006}  # fmt: skip
SECTION = {"exit": "KVM_EXIT_PAPR_HCALL", "unknown": "H_FUNCTION", "exits": [], "rtas": RTAS,
           "handlers": ["H_GET_TERM_CHAR", "H_PUT_TERM_CHAR", "H_RTAS", "H_SET_MODE"]}  # fmt: skip
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "pseries" / "pseries" / "plan.json"


class Frame:
    """A kvm_run mmap filled as the kernel fills it: offsets from hvconf.abi, the host's byte order."""

    def __init__(self, arch: str = "ppc64le") -> None:
        self.arch, self.order = arch, ORDER[arch]
        self.buf = bytearray(MMAP)
        self.fields = hvconf.abi.struct_fields("kvm_run", arch)

    def at(self, name: str, index: int = 0, width: int = 8) -> int:
        return self.fields[name].offset + index * width

    def put(self, name: str, value: int, index: int = 0, width: int = 8) -> None:
        off = self.at(name, index, width)
        self.buf[off : off + width] = (value % (1 << 8 * width)).to_bytes(width, self.order)

    def get(self, name: str, index: int = 0, width: int = 8) -> int:
        off = self.at(name, index, width)
        return int.from_bytes(self.buf[off : off + width], self.order)

    def hcall(self, nr: int, *args: int) -> Frame:
        self.put("exit_reason", hvconf.abi.exit_reason("KVM_EXIT_PAPR_HCALL").number, width=4)
        self.put("papr_hcall.nr", nr)
        self.put("papr_hcall.ret", 0x5A5A5A5A5A5A5A5A)  # stale: the handler must overwrite it
        for i, value in enumerate(args):
            self.put("papr_hcall.args", value, i)
        return self


def opcode(name: str) -> int:
    return hvconf.abi.papr_hcall(name).opcode


def serve(frame: Frame, handlers: PaprHandlers):
    """decode + handle + complete, as the executor does; returns (reply, bytes that changed)."""
    before = bytes(frame.buf)
    run = kvm_run.KvmRun(frame.buf, frame.arch)
    ex = run.decode()
    assert isinstance(ex, kvm_run.PaprHcall)
    reply = handlers.handle(ex)
    complete(run, ex, reply)
    changed = {i for i in range(len(before)) if before[i] != frame.buf[i]}
    return reply, changed


def span(frame: Frame, name: str, index: int = 0) -> set[int]:
    start = frame.at(name, index)
    return set(range(start, start + 8))


def chars(text: bytes) -> tuple[int, int]:
    padded = text.ljust(16, b"\0")
    return int.from_bytes(padded[:8], "big"), int.from_bytes(padded[8:], "big")


@pytest.fixture
def out():
    return io.BytesIO()


@pytest.fixture
def memory():
    return FlatMemory(bytearray(1 << 20))  # 1 MiB of guest RAM at 0


@pytest.fixture
def papr(out, memory):
    return PaprHandlers(SECTION, HvTerm(out, VTY), memory)


# ---- console ----

@pytest.mark.parametrize("arch", ["ppc64le", "ppc64"])
def test_put_term_char_prints_big_endian_packed_bytes(arch, out, papr):
    frame = Frame(arch).hcall(opcode("H_PUT_TERM_CHAR"), VTY, 14, *chars(b"Hello, world!\n"))
    reply, changed = serve(frame, papr)
    assert out.getvalue() == b"Hello, world!\n"
    assert frame.get("papr_hcall.ret") == H["H_SUCCESS"]
    assert changed <= span(frame, "papr_hcall.ret")  # r4..r7 go back to the guest untouched


def test_put_term_char_takes_exactly_sixteen_and_terminal_zero(out, papr):
    serve(Frame().hcall(opcode("H_PUT_TERM_CHAR"), 0, 16, *chars(b"0123456789abcdef")), papr)
    assert out.getvalue() == b"0123456789abcdef"


@pytest.mark.parametrize(("terminal", "length"), [(VTY, 17), (VTY, 1 << 63), (VTY + 1, 1)])
def test_put_term_char_refuses_long_writes_and_other_terminals(terminal, length, out, papr):
    frame = Frame().hcall(opcode("H_PUT_TERM_CHAR"), terminal, length, *chars(b"x" * 16))
    reply, changed = serve(frame, papr)
    assert frame.buf[frame.at("papr_hcall.ret") :][:8] == (H["H_PARAMETER"] % 2**64).to_bytes(8, "little")
    assert out.getvalue() == b"" and reply.outcome is Outcome.CONTINUE


def test_get_term_char_returns_count_and_packed_bytes(papr):
    papr.console.feed(b"ab")
    frame = Frame().hcall(opcode("H_GET_TERM_CHAR"), VTY, 0x1111, 0x2222, 0x3333)
    reply, changed = serve(frame, papr)
    assert frame.get("papr_hcall.ret") == 0
    assert [frame.get("papr_hcall.args", i) for i in range(4)] == [2, 0x6162 << 48, 0, 0x3333]
    assert changed <= span(frame, "papr_hcall.ret") | span(frame, "papr_hcall.args", 0) | span(
        frame, "papr_hcall.args", 1) | span(frame, "papr_hcall.args", 2)  # fmt: skip


def test_get_term_char_splits_long_input_and_reports_none_left(papr):
    papr.console.feed(b"A" * 20)
    counts = []
    for _ in range(3):
        frame = Frame().hcall(opcode("H_GET_TERM_CHAR"), VTY)
        serve(frame, papr)
        counts.append(frame.get("papr_hcall.args", 0))
    assert counts == [16, 4, 0]


def test_console_calls_without_a_console_are_parameter_errors(memory):
    bare = PaprHandlers(SECTION, None, memory)
    for name in ("H_PUT_TERM_CHAR", "H_GET_TERM_CHAR"):
        frame = Frame().hcall(opcode(name), VTY, 1)
        serve(frame, bare)
        assert frame.get("papr_hcall.ret") % 2**64 == H["H_PARAMETER"] % 2**64


# ---- RTAS ----

def rtas_block(memory: FlatMemory, at: int, token: int, args: list[int], nret: int) -> int:
    words = [token, len(args), nret, *args, *[0xDEADBEEF] * nret]
    memory.write(at, b"".join(w.to_bytes(4, "big") for w in words))
    return at + 12 + 4 * len(args)  # where the rets are


def rets(memory: FlatMemory, at: int, n: int) -> list[int]:
    raw = memory.read(at, 4 * n)
    return [int.from_bytes(raw[i : i + 4], "big", signed=True) for i in range(0, len(raw), 4)]


@pytest.mark.parametrize(("service", "args", "outcome"), [
    ("power-off", [0, 0], Outcome.POWER_OFF), ("system-reboot", [], Outcome.RESET)])  # fmt: skip
def test_rtas_power_off_and_reboot_end_the_run(service, args, outcome, papr, memory):
    at = rtas_block(memory, 0x1000, RTAS[service], args, 1)
    frame = Frame().hcall(opcode("H_RTAS"), 0x1000)
    reply, _ = serve(frame, papr)
    assert (frame.get("papr_hcall.ret"), reply.outcome, rets(memory, at, 1)) == (0, outcome, [0])


def test_rtas_display_character_and_the_early_debug_token(out, papr, memory):
    for token in (RTAS["display-character"], 0xA):
        rtas_block(memory, 0x2000, token, [ord("X")], 1)
        serve(Frame().hcall(opcode("H_RTAS"), 0x2000), papr)
    assert out.getvalue() == b"XX"


def test_rtas_address_is_a_real_address(papr, memory):
    at = rtas_block(memory, 0x3000, RTAS["system-reboot"], [], 1)
    reply, _ = serve(Frame().hcall(opcode("H_RTAS"), 0xC000_0000_0000_3000), papr)
    assert reply.outcome is Outcome.RESET and rets(memory, at, 1) == [0]


def test_rtas_get_time_of_day(out, memory):
    papr = PaprHandlers(SECTION, HvTerm(out, VTY), memory)
    papr.rtas.clock = lambda: 1_700_000_000.25  # 2023-11-14 22:13:20.25 UTC
    at = rtas_block(memory, 0x1000, RTAS["get-time-of-day"], [], 8)
    serve(Frame().hcall(opcode("H_RTAS"), 0x1000), papr)
    assert rets(memory, at, 8) == [0, 2023, 11, 14, 22, 13, 20, 250_000_000]


@pytest.mark.parametrize(("token", "args", "nret", "status", "ret"), [
    (0x2FFF, [], 1, -3, H["H_PARAMETER"]),                          # unknown token
    (RTAS["start-cpu"], [1, 2, 3], 1, -3, H["H_PARAMETER"]),        # declared, not implemented here
    (RTAS["power-off"], [0], 1, -3, H["H_SUCCESS"]),                # wrong nargs: status only
    (RTAS["system-reboot"], [], 2, -3, H["H_SUCCESS"]),             # wrong nret
    (RTAS["get-time-of-day"], [], 1, -3, H["H_SUCCESS"]),
])  # fmt: skip
def test_rtas_bad_calls_get_status_minus_three_and_keep_running(token, args, nret, status, ret, papr, memory):
    at = rtas_block(memory, 0x1000, token, args, nret)
    frame = Frame().hcall(opcode("H_RTAS"), 0x1000)
    reply, _ = serve(frame, papr)
    assert rets(memory, at, nret)[0] == status
    assert frame.get("papr_hcall.ret") % 2**64 == ret % 2**64 and reply.outcome is Outcome.CONTINUE
    assert papr.rtas.unserved == {RTAS["start-cpu"]: "start-cpu"}


def test_rtas_unknown_token_with_no_rets_writes_nothing(papr, memory):
    rtas_block(memory, 0x1000, 0x2FFF, [7], 0)
    before = bytes(memory.data)
    serve(Frame().hcall(opcode("H_RTAS"), 0x1000), papr)
    assert bytes(memory.data) == before


@pytest.mark.parametrize(("address", "header"), [
    (1 << 20, None),                                  # beyond guest memory
    ((1 << 20) - 8, None),                            # header straddles the end
    ((1 << 20) - 16, (0x2003, 2, 1)),                 # header fits, args and rets do not
    (0x1000, (0x2003, 0xFFFF_FFFF, 1)),               # nargs huge
    (0x1000, (0x2003, 2, 0xFFFF_FFFF)),               # nret huge
    (0x1000, (0x2003, 33, 0)),                        # just over the limit
])  # fmt: skip
def test_rtas_blocks_outside_memory_or_oversized_are_refused_untouched(address, header, papr, memory):
    if header is not None:
        memory.write(address, b"".join(w.to_bytes(4, "big") for w in header))
    before = bytes(memory.data)
    frame = Frame().hcall(opcode("H_RTAS"), address)
    reply, _ = serve(frame, papr)
    assert frame.get("papr_hcall.ret") % 2**64 == H["H_PARAMETER"] % 2**64
    assert reply.outcome is Outcome.CONTINUE and bytes(memory.data) == before


def test_slots_refuse_an_access_across_two_slots():
    low, high = FlatMemory(bytearray(4096)), FlatMemory(bytearray(4096))
    slots = Slots([(0x10000, high), (0, low)])
    slots.write(0x10000 + 4092, b"abcd")
    assert high.read(4092, 4) == b"abcd"
    with pytest.raises(GuestAccessError):
        slots.read(4094, 4)  # the end of slot 0 is not contiguous with anything
    with pytest.raises(GuestAccessError):
        slots.read(0x10000 + 4094, 4)


# ---- H_SET_MODE, unknown hcalls, tables ----

@pytest.mark.parametrize(("args", "ret", "little"), [
    ((1, 4, 0, 0), H["H_SUCCESS"], True),
    ((0, 4, 0, 0), H["H_SUCCESS"], False),
    ((1, 4, 5, 0), H["H_P3"], None),
    ((2, 4, 0, 0), H["H_UNSUPPORTED_FLAG"], None),
    ((0, 3, 0, 0), H["H_FUNCTION"], None),             # AIL: not served here
])  # fmt: skip
def test_set_mode_records_only_the_endianness(args, ret, little, papr):
    frame = Frame().hcall(opcode("H_SET_MODE"), *args)
    serve(frame, papr)
    assert frame.get("papr_hcall.ret") % 2**64 == ret % 2**64
    assert papr.interrupts_little_endian is little


@pytest.mark.parametrize("name", ["H_PUT_TCE", "H_GET_TCE", "H_STUFF_TCE", "H_PUT_TCE_INDIRECT"])
def test_tce_calls_on_a_liobn_without_a_table_are_parameter_errors(name, out, memory):
    # the kernel serves the plan's tables; what reaches userspace names another LIOBN (QEMU: H_PARAMETER)
    section = {**SECTION, "liobns": [0x80000000], "handlers": [*SECTION["handlers"], name]}
    papr = handlers_for({"papr": section}, console=HvTerm(out, VTY), memory=memory)
    frame = Frame().hcall(opcode(name), 0x12340000, 0x2000, 0x8003, 1)
    reply, changed = serve(frame, papr)
    assert frame.get("papr_hcall.ret") % 2**64 == H["H_PARAMETER"] % 2**64
    assert changed <= span(frame, "papr_hcall.ret") and "no TCE table has LIOBN 0x12340000" in reply.note
    frame = Frame().hcall(opcode(name), 0x80000000, 0x2000, 0x8003, 1)
    reply, _ = serve(frame, papr)
    assert frame.get("papr_hcall.ret") % 2**64 == -1 % 2**64 and "its own table 0x80000000" in reply.note  # H_HARDWARE


@pytest.mark.parametrize("nr", [opcode("H_CEDE"), 0x1234, 0xF001, 1 << 63])
def test_unknown_hcalls_answer_h_function_and_leave_args_alone(nr, papr):
    frame = Frame().hcall(nr, 1, 2, 3, 4, 5, 6, 7, 8, 9)
    reply, changed = serve(frame, papr)
    assert frame.get("papr_hcall.ret") % 2**64 == H["H_FUNCTION"] % 2**64
    assert changed <= span(frame, "papr_hcall.ret") and reply.outcome is Outcome.CONTINUE


def test_a_handler_the_plan_does_not_list_is_unknown(out, memory):
    papr = PaprHandlers({**SECTION, "handlers": ["H_PUT_TERM_CHAR"]}, HvTerm(out, VTY), memory)
    frame = Frame().hcall(opcode("H_RTAS"), 0x1000)
    serve(frame, papr)
    assert frame.get("papr_hcall.ret") % 2**64 == H["H_FUNCTION"] % 2**64


def test_a_plan_naming_a_missing_handler_is_refused():
    with pytest.raises(ValueError, match="H_ENTER"):
        PaprHandlers({**SECTION, "handlers": ["H_ENTER"]})


def test_the_compilers_pseries_plan_builds_its_table(out, memory):
    plan = json.loads(GOLDEN.read_text())
    table = handlers_for(plan["launcher"], console=hv_console(plan["console"], out), memory=memory)
    assert isinstance(table, PaprHandlers)
    assert sorted(table.opcode2name.values()) == plan["launcher"]["papr"]["handlers"]
    at = rtas_block(memory, 0x1000, plan["launcher"]["papr"]["rtas"]["power-off"], [0, 0], 1)
    reply, _ = serve(Frame().hcall(opcode("H_RTAS"), 0x1000), table)
    assert reply.outcome is Outcome.POWER_OFF and rets(memory, at, 1) == [0]
    serve(Frame().hcall(opcode("H_PUT_TERM_CHAR"), plan["console"]["reg"], 3, *chars(b"ok\n")), table)
    assert out.getvalue() == b"ok\n"


# ---- other exits on a PowerPC kvm_run ----

def test_osi_exit_round_trips_all_gprs():
    frame = Frame()
    frame.put("exit_reason", hvconf.abi.exit_reason("KVM_EXIT_OSI").number, width=4)
    for i in range(32):
        frame.put("osi.gprs", 0x100 + i, i)
    run = kvm_run.KvmRun(frame.buf, "ppc64le")
    ex = run.decode()
    assert isinstance(ex, kvm_run.Osi) and ex.gprs == tuple(range(0x100, 0x120))
    run.complete_osi({3: 0, 4: 0xFFFF})
    assert (frame.get("osi.gprs", 3), frame.get("osi.gprs", 4), frame.get("osi.gprs", 5)) == (0, 0xFFFF, 0x105)


@pytest.mark.parametrize(("setup", "expect"), [
    (lambda f: f.put("exit_reason", 4242, width=4), kvm_run.Unknown(4242)),
    (lambda f: (f.put("exit_reason", 6, width=4), f.put("mmio.len", 9, width=4)), kvm_run.BadExit),
    (lambda f: (f.put("exit_reason", 2, width=4), f.put("io.size", 1, width=1), f.put("io.count", 1, width=4),
                f.put("io.direction", 1, width=1), f.put("io.data_offset", MMAP)), kvm_run.BadExit),
    (lambda f: (f.put("exit_reason", 24, width=4), f.put("system_event.ndata", 17, width=4)), kvm_run.BadExit),
    (lambda f: (f.put("exit_reason", 17, width=4), f.put("internal.ndata", 1 << 31, width=4)), kvm_run.BadExit),
])  # fmt: skip
def test_malformed_ppc_buffers_have_defined_outcomes(setup, expect):
    frame = Frame()
    setup(frame)
    if isinstance(expect, type):
        with pytest.raises(expect):
            kvm_run.decode(frame.buf, "ppc64le")
    else:
        assert kvm_run.decode(frame.buf, "ppc64le") == expect


# ---- what a booting Linux calls (crafted buffers; the real boot is tests/ppc/test_power_linux.py) ----

LINUX_SECTION = {**SECTION, "handlers": [*SECTION["handlers"], "H_REGISTER_PROC_TBL", "H_RANDOM", "H_CEDE"]}
PATB_GR = 1 << 63


def test_register_proc_tbl_hands_the_radix_table_to_kvm_as_qemu_does(out, memory):
    calls: list[tuple[int, int]] = []
    papr = PaprHandlers({**LINUX_SECTION, "mmu": "radix"}, HvTerm(out, VTY), memory,
                        lambda flags, table: calls.append((flags, table)) or 0)
    # what Debian's 6.1 kernel sent: MODIFY|REGISTER|RADIX|GTSE, table at 0xe800000, 2^(11+12) bytes
    reply, _ = serve(Frame().hcall(opcode("H_REGISTER_PROC_TBL"), 0x1D, 0xE800000, 0, 11), papr)
    assert (reply.ret, calls) == (H["H_SUCCESS"], [(3, 0x800000000E80000B)])  # RADIX|GTSE, PATB_GR|base|size
    # refused as QEMU refuses: a misaligned base, a page size, a table past 2^36
    for args, code in (((0x1D, 0xE800800, 0, 11), -55), ((0x1D, 0xE800000, 1, 11), -56),
                       ((0x1D, 0xE800000, 0, 25), -57), ((0x20, 0, 0, 0), H["H_PARAMETER"])):
        reply, _ = serve(Frame().hcall(opcode("H_REGISTER_PROC_TBL"), *args), papr)
        assert reply.ret % (1 << 64) == code % (1 << 64), args
    assert len(calls) == 1


def test_register_proc_tbl_keeps_a_hash_guests_registration_and_reports_kvms_errno(out, memory):
    calls: list[tuple[int, int]] = []
    papr = PaprHandlers({**LINUX_SECTION, "mmu": "hash"}, HvTerm(out, VTY), memory,
                        lambda flags, table: calls.append((flags, table)) or 0)
    reply, _ = serve(Frame().hcall(opcode("H_REGISTER_PROC_TBL"), 0, 0, 0, 0), papr)  # hash: "keep as it is"
    assert (reply.ret, calls) == (H["H_SUCCESS"], [(0, 0)])
    failing = PaprHandlers({**LINUX_SECTION, "mmu": "radix"}, HvTerm(out, VTY), memory, lambda flags, table: -22)
    reply, _ = serve(Frame().hcall(opcode("H_REGISTER_PROC_TBL"), 0x1D, 0xE800000, 0, 11), failing)
    assert reply.ret == H["H_PARAMETER"] and "Invalid argument" in reply.note


def test_h_random_and_h_cede_in_the_launcher(out, memory):
    papr = PaprHandlers(LINUX_SECTION, HvTerm(out, VTY), memory)
    frame = Frame().hcall(opcode("H_RANDOM"))
    words = set()
    for _ in range(4):
        reply, changed = serve(frame, papr)
        assert reply.ret == H["H_SUCCESS"] and changed <= span(frame, "papr_hcall.ret") | span(frame, "papr_hcall.args")
        words.add(frame.get("papr_hcall.args", 0))
    assert len(words) == 4  # 8 fresh bytes each time
    reply, _ = serve(Frame().hcall(opcode("H_CEDE")), papr)
    assert reply.ret == H["H_SUCCESS"] and reply.outcome == Outcome.CONTINUE


def test_a_terminals_keys_reach_h_get_term_char_in_raw_mode_and_its_mode_comes_back(out, memory):
    # a real pseudo-terminal: what a user attached to the launcher types
    import os
    import pty
    import termios
    import time

    from hvconf.kvm.powerpc.consoles import terminal_input

    master, slave = pty.openpty()
    try:
        cooked = termios.tcgetattr(slave)
        term = HvTerm(out, VTY)
        feed = terminal_input(term, slave)
        assert feed is not None
        assert not termios.tcgetattr(slave)[3] & termios.ICANON  # raw: each key at once
        os.write(master, b"ls\r")
        papr = PaprHandlers(SECTION, term, memory)
        for _ in range(200):
            if term.pending == 3:
                break
            time.sleep(0.01)
        frame = Frame().hcall(opcode("H_GET_TERM_CHAR"), VTY)
        reply, _ = serve(frame, papr)
        assert (reply.ret, frame.get("papr_hcall.args", 0)) == (H["H_SUCCESS"], 3)
        assert frame.get("papr_hcall.args", 1).to_bytes(8, "big")[:3] == b"ls\r"
        feed.restore()
        assert termios.tcgetattr(slave) == cooked
    finally:
        os.close(master)
        os.close(slave)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        assert terminal_input(HvTerm(out, VTY), null) is None  # a non-terminal is never read
    finally:
        os.close(null)


def test_a_tce_table_is_read_back_through_a_shared_mapping_of_its_fd(tmp_path):
    # no sPAPR host here: a file stands for the table fd (kvm_spapr_tce_mmap maps the same u64 array),
    # entries in the host's byte order as kvmppc_tce_put stores them; tests/ppc reads a real one
    from hvconf.kvm.powerpc import tce_tables

    entries = 3 * tce_tables.CHUNK // tce_tables.ENTRY  # three chunks: the middle one all zero, skipped whole
    table = bytearray(entries * tce_tables.ENTRY)
    written = {1: 0x1000003, 5: 0x3000001, 2 * tce_tables.CHUNK // 8 + 7: 0x5000002}
    for index, tce in written.items():
        table[index * 8 : index * 8 + 8] = tce.to_bytes(8, sys.byteorder)
    path = tmp_path / "table"
    path.write_bytes(table)
    with path.open("rb") as f:
        data = tce_tables.read_table(f.fileno(), entries)
    assert dict(tce_tables.used_entries(data)) == written
    line = tce_tables.describe("tce:0x80000100", 24, 1 << 35, entries, data)
    assert line == ("tce:0x80000100: 3 of 1536 entries in use (0x1000000-byte pages from bus address "
                    "0x800000000000000; read through the table's mmap): [1] 0x1000003, [5] 0x3000001, "
                    "[1031] 0x5000002")
    # the legacy ioctl's geometry: 4K pages from bus address 0; a table too big to touch is not read
    assert tce_tables.geometry({"window_size": 256 << 20}, "KVM_CREATE_SPAPR_TCE") == (12, 0, 65536)
    many = tce_tables.describe("t", 12, 0, 40, b"".join(i.to_bytes(8, sys.byteorder) for i in range(1, 41)))
    assert many.startswith("t: 40 of 40 entries in use") and many.endswith("[15] 0x10, ...")
