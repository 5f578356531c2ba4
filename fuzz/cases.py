"""Inputs for fuzzing the compiler: grammar-driven text and mutated samples.

`grammar_text()` is a hypothesis strategy over syntactically valid .hv text
(hypothesis.extra.lark.from_lark, with words drawn from the targets' own
names so inputs get past lowering); `Mutator` derives hostile variants of
seed files (truncation, token deletion and duplication, value swaps, random
and invalid UTF-8 bytes, enormous numbers, long names, deep nesting).
Deterministic for a given random.Random. Must not import pytest.
Tested by tests/test_fuzz.py.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
INVALID = REPO / "tests" / "invalid"
CORPUS = REPO / "tests" / "fuzz_corpus"
HELLO_S = REPO / "guests" / "x86" / "hello.S"

# Numbers at and around every limit the checks know, in every literal form.
INTS = ("0", "1", "2", "3", "4", "7", "8", "17", "18", "25", "46", "47", "60", "64", "248", "1024", "2048",
        "100000", "0x7c00", "0xffff", "0x10000", "0x2003", "0x2010", "0x44000022", "0x71000000", "0x80000000",
        "0xffffffff", "0x100000000", "4K", "64K", "1M", "2M", "16M", "64M", "256M", "1G", "4G", "8T", "16P",
        "0x7fffffffffffffff", "0xffffffffffffffff", "0x10000000000000000", "18446744073709551616",
        "9" * 41, "0b1011", "0b1", "1_000_000", "007", "0xF_F", "1P", "4294967296")
# Strings: real paths of the workspace, hostile text, escapes the lexer accepts.
STRINGS = ('"vmlinux"', '"console=hvc0"', '"g.S"', '"g.bin"', '"missing.S"', '"base/pseries.hv"',
           '"base/x86.hv"', '"other.hv"', '"ibm,set-xive"', '"power-off"', '"linux,kvm"', '""', '"."', '".."',
           '"/dev/null"', '"/dev/zero"', '"fifo.hv"', '"dir"', '"../outside.hv"', '"/etc/passwd"',
           '"\\0"', '"a\\x00b"', '"\\xff\\xfe"', '"\\n\\t\\r\\\\\\""', '"{{ 7*7 }}"', '"{% raw %}"',
           '"*/ / { ; }"', '"%s %d %(x)s {0}"', '"\\"); import os; os.system(\\"touch SENTINEL\\")#"',
           '"\'\'\'"', '"\\"\\"\\""', '"\\q"', '"' + "x" * 300 + '"')
# In every file outside the fuzz workspace's project: no diagnostic, output or build
# artifact may ever show it (docs/robustness.md, "Paths are diagnostics").
SECRET = "HVCONF-FUZZ-SECRET-5e1f"
# Paths a definition may name: symlink fan-outs, loops and dangling links inside the project,
# links and `..` out of it, host files, special files, and names too long for the kernel.
PATHS = ('"l1/fan.hv"', '"l2/fan.hv"', '"l1/l2/l1/other.hv"', '"loop/x.hv"', '"loop"', '"dangling.hv"',
         '"out/secret.hv"', '"out/secret.txt"', '"out/vmlinux"', '"secret.hv"', '"secret-guest.S"',
         '"../../outside/secret.hv"', '"../../outside/vmlinux"', '"l1/../../outside/secret.hv"',
         '"g-incbin.S"', '"g-include.S"', '"g-macro.S"', '"/proc/self/environ"', '"/proc/self/status"',
         '"/etc/passwd"', '"/etc/shadow"', '"/sys/kernel/mm/transparent_hugepage/enabled"', '"/dev/stdin"',
         '"/dev/zero"', '"/dev/null"', '"dir/"', '"fifo.hv"', '"notes.txt"', '"' + "a" * 300 + '.hv"',
         '"' + "d/" * 3000 + 'x.hv"', '"other.hv/x.hv"')
PATH_STATEMENTS = ("kernel", "guest")

MODES = ("real", "prot32", "long64", "kernel", "split", "on", "off", "speaker_dummy", "radix", "hash", "none",
         "auto", "true", "false", "idle", "reset", "shutdown", "compatible", "hcall_instructions", "liobn",
         "window", "page", "offset", "vio0", "pci0", "order", "vm", "vcpus", "vcpu", "memory")


STATEMENT_RULES = ("setting", "guest_stmt", "hcalls_block", "rtas_block", "cap_stmt", "tce_block",
                   "hypervisor_block", "pv_block")


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """Every name the targets know (arches, flavours, caps and their args, hcalls, consoles...)."""
    from hvconf.model.target import load_target, target_names

    names: set[str] = set(MODES)
    for name in target_names():
        t = load_target(name)
        names |= {name, *t.arches, *t.flavours, *t.name2console, *t.presets, *t.name2cap, *t.name2hcall,
                  *t.name2pv_feature}
        for cap in t.caps:
            for arg in cap.args:
                names.add(arg.name)
                names |= set(arg.values or ())
    return tuple(sorted(names))


def grammar_text():  # -> SearchStrategy[str]; hypothesis is a test dependency only
    """Syntactically valid .hv text: every terminal is followed by a blank, so
    keywords, names and numbers never run together."""
    from hypothesis import strategies as st
    from hypothesis.extra.lark import from_lark

    from lark import Lark

    from hvconf.resources import grammar_path

    # A fresh Lark: the compiler's cached one is loaded without the grammar hypothesis reads.
    lark = Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr")
    explicit: dict[str, object] = {}
    for term in lark.terminals:
        m = re.match(r"([a-z_]+)\(\?!", term.pattern.value) if term.pattern.type == "re" else None
        if m:  # keyword: hypothesis cannot draw the lookahead regexp
            explicit[term.name] = st.just(m.group(1) + " ")
    name = st.sampled_from(vocabulary()) | st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,12}", fullmatch=True)
    explicit["NAME"] = name.map(lambda s: s + " ")
    explicit["INT"] = (st.sampled_from(INTS) | st.integers(0, 2**70).map(str)).map(lambda s: s + " ")
    explicit["STRING"] = st.sampled_from(STRINGS) | st.from_regex(r'"(?:[^"\\\n]|\\[nt0"\\]){0,20}"',
                                                                   fullmatch=True)
    explicit["COMMENT"] = st.just("# c\n")
    explicit["WS"] = st.sampled_from([" ", "\n", "\t", "\r\n"])
    whole = from_lark(lark, explicit=explicit)
    # hypothesis prefers short expansions, so whole files rarely hold statements: also draw
    # VMs whose bodies are lists of statements, half of them on a real arch with memory.
    statement = st.one_of([from_lark(lark, start=rule, explicit=_terminals_of(lark, rule, explicit))
                           for rule in STATEMENT_RULES]
                          + [st.tuples(st.sampled_from(["kernel ", "cmdline "]), explicit["STRING"]).map("".join)])
    prelude = st.sampled_from(["", "arch x86_64 memory 2M ", "arch ppc64le kvm book3s_hv memory 1G cap "
                               "KVM_CAP_PPC_PAPR on vcpus ", "arch ppc-e500 memory 64M ", "arch s390x memory 16M "])
    vm = st.tuples(explicit["NAME"], prelude, st.lists(statement, max_size=12)).map(
        lambda t: f"vm {t[0]}{{ {t[1]}{' '.join(t[2])} }}\n")
    return whole | st.lists(vm, min_size=1, max_size=3).map("".join)


def _terminals_of(lark: "Any", rule: str, explicit: dict[str, object]) -> dict[str, object]:
    """`explicit` cut to the terminals reachable from `rule` (from_lark refuses others)."""
    terminals, rules, _ = lark.grammar.compile([rule], ())
    used = {sym.name for r in rules for sym in r.expansion if sym.is_term}
    return {name: strategy for name, strategy in explicit.items() if name in used or name in ("WS", "COMMENT")}


# ---- mutations ---------------------------------------------------------------------

_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[A-Za-z0-9_\-]+|\s+|.', re.DOTALL)
_INT = re.compile(r"^(0[xXbB])?[0-9A-Fa-f_]+[KMGTPkmgtp]?$")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _kind(tok: str) -> str:
    if tok.startswith('"'):
        return "string"
    if tok[:1].isdigit():
        return "int"
    if tok[:1].isalpha() or tok[:1] == "_":
        return "name"
    return "space" if tok.isspace() else "punct"


class Mutator:
    """Hostile variants of seed files; `next()` returns (operator name, bytes)."""

    def __init__(self, rng: random.Random, seeds: list[str], *, big: bool = True) -> None:
        self.rng = rng
        self.big = big  # whole-file repetitions up to 500 VMs (seconds per case), else up to 20
        self.seeds = seeds
        self.pool: dict[str, list[str]] = {}
        for seed in seeds:
            for tok in tokens(seed):
                self.pool.setdefault(_kind(tok), []).append(tok)
        self.pool["int"] = self.pool.get("int", []) + list(INTS)
        self.pool["string"] = self.pool.get("string", []) + list(STRINGS)
        self.pool["name"] = self.pool.get("name", []) + list(vocabulary())
        self.operators: dict[str, Callable[[list[str]], str | bytes]] = {
            "truncate": self.truncate, "delete": self.delete, "duplicate": self.duplicate,
            "swap": self.swap, "replace": self.replace, "bytes": self.random_bytes,
            "utf8": self.invalid_utf8, "huge-number": self.huge_number, "long-name": self.long_name,
            "nesting": self.nesting, "splice": self.splice, "repeat-vm": self.repeat_vm,
            "empty": lambda toks: "", "binary": self.binary, "stack": self.stack,
            "path": self.path,
        }

    def next(self) -> tuple[str, bytes]:
        op = self.rng.choice(list(self.operators))
        out = self.operators[op](tokens(self.rng.choice(self.seeds)))
        return op, out if isinstance(out, bytes) else out.encode("utf-8", "surrogatepass")

    def _pick(self, toks: list[str], kinds: tuple[str, ...] = ("string", "int", "name", "punct")) -> int | None:
        where = [i for i, t in enumerate(toks) if _kind(t) in kinds]
        return self.rng.choice(where) if where else None

    def truncate(self, toks: list[str]) -> str:
        text = "".join(toks)
        return text[: self.rng.randrange(len(text) + 1)]

    def delete(self, toks: list[str]) -> str:
        for _ in range(self.rng.randint(1, 3)):
            i = self._pick(toks)
            if i is not None:
                del toks[i]
        return "".join(toks)

    def duplicate(self, toks: list[str]) -> str:
        i = self._pick(toks)
        if i is not None:
            toks[i:i] = [toks[i], " "] * self.rng.randint(1, 3)
        return "".join(toks)

    def swap(self, toks: list[str]) -> str:
        i, j = self._pick(toks), self._pick(toks)
        if i is not None and j is not None:
            toks[i], toks[j] = toks[j], toks[i]
        return "".join(toks)

    def replace(self, toks: list[str]) -> str:
        for _ in range(self.rng.randint(1, 4)):
            i = self._pick(toks, ("string", "int", "name"))
            if i is not None:
                kind = self.rng.choice(["string", "int", "name"]) if self.rng.random() < 0.2 else _kind(toks[i])
                toks[i] = self.rng.choice(self.pool[kind])
        return "".join(toks)

    def random_bytes(self, toks: list[str]) -> bytes:
        data = bytearray("".join(toks).encode())
        for _ in range(self.rng.randint(1, 8)):
            at = self.rng.randrange(len(data) + 1)
            data[at:at] = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 4)))
        return bytes(data)

    def invalid_utf8(self, toks: list[str]) -> bytes:
        data = "".join(toks).encode()
        at = self.rng.randrange(len(data) + 1)
        bad = self.rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"\xe2\x82"])
        return data[:at] + bad + data[at:]

    def huge_number(self, toks: list[str]) -> str:
        i = self._pick(toks, ("int",))
        digits = self.rng.choice([20, 39, 40, 41, 1000, 100_000])
        big = self.rng.choice(["9" * digits, "0x" + "f" * digits, "0b" + "1" * digits, "1" + "0" * digits + "P"])
        if i is None:
            return "".join(toks) + big
        toks[i] = big
        return "".join(toks)

    def long_name(self, toks: list[str]) -> str:
        i = self._pick(toks, ("name",))
        if i is not None:
            toks[i] = toks[i][:1] + "a" * self.rng.choice([200, 255, 256, 1000, 100_000])
        return "".join(toks)

    def nesting(self, toks: list[str]) -> str:
        depth = self.rng.choice([2, 10, 17, 100, 1000, 10_000, 100_000])
        i = self._pick(toks, ("int", "string", "name"))
        if i is None:
            return "[" * depth
        toks[i] = "[" * depth + toks[i] + "]" * self.rng.choice([depth, depth - 1, 0])
        return "".join(toks)

    def splice(self, toks: list[str]) -> str:
        other = tokens(self.rng.choice(self.seeds))
        a, b = self.rng.randrange(len(toks) + 1), self.rng.randrange(len(other) + 1)
        return "".join(toks[:a] + other[b:])

    def repeat_vm(self, toks: list[str]) -> str:
        text = "".join(toks)
        m = re.search(r"vm\s+([A-Za-z_][A-Za-z0-9_\-]*)", text)
        n = self.rng.choice([2, 50, 500] if self.big else [2, 5, 20])
        if not self.big:  # CI: keep a case well under a second (each VM costs ~1-5 ms to check and build)
            n = max(1, min(n, 16_000 // max(len(text), 1)))
        if not m:
            return text * n
        return text + "".join(text[m.start():].replace(m.group(1), f"{m.group(1)}_{k}", 1) for k in range(n))

    def path(self, toks: list[str]) -> str:
        """A path from PATHS where a string stood, in a new `include`, or as a VM's image."""
        chosen = self.rng.choice(PATHS)
        where = self.rng.random()
        if where < 0.4:
            i = self._pick(toks, ("string",))
            if i is not None:
                toks[i] = chosen
                return "".join(toks)
        text = "".join(toks)
        if where < 0.7:
            return f"include {chosen}\n{text}"
        body = text.find("{", text.find("vm "))
        if body < 0:
            return f"{text}\nvm p {{ {self.rng.choice(PATH_STATEMENTS)} {chosen} }}\n"
        return f"{text[:body + 1]} {self.rng.choice(PATH_STATEMENTS)} {chosen}\n{text[body + 1:]}"

    def binary(self, toks: list[str]) -> bytes:
        return bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 512)))

    def stack(self, toks: list[str]) -> str:
        for _ in range(self.rng.randint(2, 4)):
            op = self.rng.choice(["delete", "duplicate", "swap", "replace", "huge-number", "nesting"])
            out = self.operators[op](toks)
            toks = tokens(out if isinstance(out, str) else out.decode("utf-8", "replace"))
        return "".join(toks)


def seed_texts() -> list[str]:
    """The samples, the bad samples and the corpus: every file a mutation starts from."""
    files = [*sorted(SAMPLES.rglob("*.hv")), *sorted(INVALID.glob("*.hv")), *sorted(CORPUS.glob("*.hv"))]
    return [p.read_bytes().decode("utf-8", "replace") for p in files]


def workspace(folder: Path) -> Path:
    """A project laid out like samples/ (includes and guests resolve), odd files the vocabulary
    names, the symlinks and guest sources PATHS names, and beside the project a folder of host
    files holding SECRET; returns the folder cases are written into."""
    project, outside = folder / "project", folder / "outside"
    outside.mkdir(parents=True, exist_ok=True)
    for name in ("secret.hv", "secret.txt", "vmlinux", "secret.S", "secret.bin"):
        (outside / name).write_text(f"abstract vm base {{ {SECRET} }}\n{SECRET} nop\n")
    cases = project / "samples"
    shutil.copytree(SAMPLES, cases, dirs_exist_ok=True)
    (project / ".git").mkdir(exist_ok=True)  # a repository, so the samples' ../guests are inside their project
    (project / "guests" / "x86").mkdir(parents=True, exist_ok=True)
    shutil.copy(HELLO_S, project / "guests" / "x86" / "hello.S")
    links = {"l1": ".", "l2": ".", "loop": "loop", "dangling.hv": "nowhere.hv", "out": "../../outside",
             "secret.hv": "../../outside/secret.hv", "secret-guest.S": "../../outside/secret.S"}
    for name, target in links.items():
        if not os.path.lexists(cases / name):
            os.symlink(target, cases / name)
    # The fan-out: every level includes itself through both links (2^depth paths by name).
    (cases / "fan.hv").write_text('format 1\ninclude "l1/fan.hv"\ninclude "l2/fan.hv"\n')
    (cases / "notes.txt").write_text("project notes, not a definition\n")
    hello = HELLO_S.read_text()
    (cases / "g-incbin.S").write_text(hello + '\n.incbin "../../outside/secret.bin"\n')
    (cases / "g-include.S").write_text('.include "out/secret.S"\n' + hello)
    (cases / "g-macro.S").write_text('.macro inc f\n.incbin "\\f"\n.endm\ninc "../../outside/secret.bin"\n' + hello)
    shutil.copy(HELLO_S, cases / "g.S")
    (cases / "g.bin").write_bytes(b"\xf4" * 16)  # hlt
    (cases / "vmlinux").write_bytes(b"\0" * 64)
    (cases / "other.hv").write_text("format 1\nabstract vm other {\n    arch x86_64\n}\n")
    (project / "outside.hv").write_text("format 1\n")
    (cases / "dir").mkdir(exist_ok=True)
    fifo = cases / "fifo.hv"
    if not fifo.exists():
        os.mkfifo(fifo)
    return cases
