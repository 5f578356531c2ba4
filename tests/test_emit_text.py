"""The fast renderers of plan.json and manifest.json are byte for byte what the
standard library writes: `jsontext.dumps(v)` is `json.dumps(v, indent=2)`, for
every value, the first time and again from the memo, and for values the memo
must not confuse with an equal-looking one, and `manifest.render` is json.dumps
of `manifest.data` with indent=2; launch.py's plan literal
(`launcher.plan_literal`) evaluates to the plan, laid out a step a line.
(Whole outputs: tests/test_golden.py.)
"""

from __future__ import annotations

import ast
import enum
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvconf import compiler
from hvconf.emit import jsontext, launcher, manifest
from hvconf.emit.memo import Memo, fingerprint

REPO = Path(__file__).resolve().parent.parent
SAMPLES = sorted((REPO / "samples").glob("*.hv"))


def assert_same(value: Any) -> None:
    for _ in range(2):  # rendered, then (for repeated subtrees) from the memo
        assert jsontext.dumps(value) == json.dumps(value, indent=2)


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=120), st.sampled_from(["KVM_RUN", "vm", "a.hv:1:1", "é\u202e\x1b", ""]))
TREES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=8), st.dictionaries(st.text(max_size=40), inner, max_size=8)), max_leaves=50)


@settings(max_examples=400, deadline=None, database=None, derandomize=True)
@given(TREES)
def test_any_plain_value_renders_as_the_standard_library_does(value: Any) -> None:
    assert_same(value)


@settings(max_examples=80, deadline=None, database=None, derandomize=True)
@given(st.lists(TREES, min_size=2, max_size=6), st.integers(min_value=0, max_value=99))
def test_values_sharing_subtrees_render_as_the_standard_library_does(parts: list[Any], width: int) -> None:
    # The same subtrees at other depths and other positions in a line (other room left):
    # the memo is keyed by where a subtree goes as well as by what it is.
    for value in ([parts, parts[0]], {"k" * width: parts}, [{"a": parts[1]}, parts[1], [[parts[1]]]]):
        assert_same(value)


NASTY = st.sampled_from(["'''", '"""', "\\", "\\'", "'", "\n", "\r", "\x00", "\x7f", "\x1b[2J", "\u2028",
                         "\u202e", "\ud800", "é", "{{ x }}", "__import__('os')", "\\\n", "\x9b"])
TEXT = st.one_of(NASTY, st.text(max_size=12), st.tuples(NASTY, NASTY, st.text(max_size=4)).map("".join))
JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), TEXT)
JSON_TREES = st.recursive(JSON_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)
PLANS = st.dictionaries(TEXT, st.one_of(JSON_TREES, st.lists(JSON_TREES, max_size=4)), max_size=6)


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(PLANS)
def test_the_plan_literal_evaluates_to_the_plan_and_shows_no_control_character(plan: dict[str, Any]) -> None:
    literal = launcher.plan_literal(plan)
    assert ast.literal_eval(literal) == plan
    # Only repr's escapes of a string's quotes, backslashes and unprintable characters: no
    # character of a string can end the literal, and none can drive the terminal of who reads it.
    assert all(c.isprintable() or c == "\n" for c in literal)
    tree = ast.parse(launcher.render(plan))
    [assign] = [n for n in tree.body if isinstance(n, ast.Assign)]
    assert ast.literal_eval(assign.value) == plan


def test_the_plan_literal_puts_each_step_on_a_line_of_its_own() -> None:
    steps = [{"fd": "vm", "ioctl": f"KVM_{i}", "args": {"x": [i]}, "source": "a.hv:1:1"} for i in range(3)]
    plan = {"format": 1, "vm": "v", "images": [], "steps": steps}
    assert launcher.plan_literal(plan).splitlines() == [
        "{'format': 1,", " 'vm': 'v',", " 'images': [],", " 'steps': [",
        *[f"  {step!r}," for step in steps[:-1]], f"  {steps[-1]!r}]}}"]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_plan_renders_as_the_standard_library_does(sample: Path) -> None:
    for built in compiler.build([sample]).built:
        assert_same(built.plan)
        assert built.files["plan.json"].decode() == json.dumps(built.plan, indent=2) + "\n"
        assert built.files["launch.py"].decode().count("\nPLAN = " + launcher.plan_literal(built.plan) + "\n") == 1


def test_many_vms_of_one_base_render_as_the_standard_library_does(tmp_path: Path) -> None:
    # Steps shared by every VM (the memo's hits), and steps at each VM's own line (misses).
    source = tmp_path / "vms.hv"
    source.write_text("format 1\nabstract vm b {\n    arch x86_64\n    memory 16M\n    console serial\n}\n"
                      + "".join(f"vm v{i} extends b {{ vcpus {1 + i % 3} }}\n" for i in range(40)))
    result = compiler.build([source])
    assert len(result.built) == 40
    for built in result.built:
        assert built.files["plan.json"].decode() == json.dumps(built.plan, indent=2) + "\n"
        assert ast.literal_eval(launcher.plan_literal(built.plan)) == built.plan


class Colour(enum.IntEnum):
    RED = 1


class LooksLikeADict:
    """An object whose repr is that of a long dict."""

    def __repr__(self) -> str:
        return repr(LONG_DICT)


LONG_DICT = {f"key{i}": "value" * 3 for i in range(8)}


@pytest.mark.parametrize("value", [
    {"long": "word " * 40},
    {"tuple": (1, 2, 3), "one": (1,)},
    {"set": {1}, "frozen": frozenset()},
    {1: "int key", None: "none key"},
    {"enum": Colour.RED, "nested": [Colour.RED] * 40},
    {"bytes": b"\x00" * 200},
    [float("nan"), float("inf"), -0.0, 1e300, 2 ** 70, -(10 ** 120)],
    {"a": [LONG_DICT, LooksLikeADict()]},
], ids=["long-string", "tuple", "set", "non-str-keys", "int-enum", "bytes", "numbers", "repr-lookalike"])
def test_values_outside_plain_data_render_as_the_standard_library_does(value: Any) -> None:
    try:
        expected = json.dumps(value, indent=2)
    except (TypeError, ValueError):
        with pytest.raises((TypeError, ValueError)):
            jsontext.dumps(value)
    else:
        assert jsontext.dumps(value) == expected


def test_the_memo_never_takes_a_lookalike_for_what_it_imitates() -> None:
    # {"c": 1} is encoded and remembered; an IntEnum of the same value must still be encoded
    # as json.dumps encodes it.
    jsontext.dumps({"x": [{"c": 1}]})
    assert jsontext.dumps({"x": [{"c": Colour.RED}]}) == json.dumps({"x": [{"c": Colour.RED}]}, indent=2)


def test_fingerprints_tell_apart_what_renders_differently() -> None:
    distinct = [1, True, 1.0, "1", [1], (1,), {"a": 1}, {"a": True}, [1, [2]], [[1], 2], None, 0, False, -0.0, 0.0]
    assert len({fingerprint(v) for v in distinct}) == len(distinct)
    assert fingerprint(["a" + "b", {"k": 2 ** 40}]) == fingerprint(["ab", {"k": 2 ** 40}])
    assert fingerprint(Colour.RED) is None and fingerprint([LooksLikeADict()]) is None


def test_the_memo_is_bounded() -> None:
    memo = Memo(3)
    for i in range(10):
        memo.put(i, str(i))
        assert len(memo.entries) <= 3
    assert memo.get(9) == "9"


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(TEXT, TEXT, st.dictionaries(TEXT, TEXT, max_size=4), st.dictionaries(TEXT, st.binary(max_size=8), max_size=4))
def test_the_manifest_is_what_json_dumps_writes(vm: str, target: str, inputs: dict[str, str],
                                                outputs: dict[str, bytes]) -> None:
    # Written out directly, not as a tree: byte for byte json.dumps(indent=2) of its object,
    # whatever the names hold (quotes, backslashes, controls, non-ASCII) and with no inputs.
    expected = json.dumps(manifest.data(vm, target, inputs, outputs), indent=2) + "\n"
    assert manifest.render(vm, target, inputs, outputs) == expected.encode()
