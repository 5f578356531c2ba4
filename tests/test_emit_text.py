"""The fast renderers of plan.json, manifest.json and launch.py's plan literal
are byte for byte what the standard library writes: `jsontext.dumps(v)` is
`json.dumps(v, indent=2)` and `launcher.python_literal(v)` is
`pprint.pformat(v, indent=1, width=100, sort_dicts=False)`, for every value,
the first time and again from the memo, and for values the memo must not
confuse with an equal-looking one. (Whole outputs: tests/test_golden.py.)
"""

from __future__ import annotations

import enum
import json
import pprint
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvconf import compiler
from hvconf.emit import jsontext, launcher
from hvconf.emit.memo import Memo, fingerprint

REPO = Path(__file__).resolve().parent.parent
SAMPLES = sorted((REPO / "samples").glob("*.hv"))


def pformat(value: Any) -> str:
    return pprint.pformat(value, indent=1, width=100, sort_dicts=False)


def assert_same(value: Any) -> None:
    for _ in range(2):  # rendered, then (for repeated subtrees) from the memo
        assert jsontext.dumps(value) == json.dumps(value, indent=2)
        assert launcher.python_literal(value) == pformat(value)


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


def test_values_at_the_edge_of_the_line_render_as_the_standard_library_does() -> None:
    # pprint keeps a value on one line when its repr fits in the width left after the indent
    # and the closing brackets still to come (the allowance), and splits a string with spaces
    # that does not; every length around that edge, the same subtree first as an inner item,
    # then as a last one (more closers after it).
    for size in range(50, 100):
        sub = {"a": "x" * (size - 20), "b": [1, 2]}
        words = ("w " * size)[:size]  # every length, a space to split at
        for value in ([[sub, sub]], {"k": [sub, {"j": sub}]}, [sub, [sub, [sub]]], [[["y" * size]], "z"],
                      {"key": {"key": ["w" * (size - 12)]}}, [sub, [[sub]]], {"k": {"k": words[:-10]}},
                      [{"k" * (size - 9): 1, "j": 2}, "p" * 20], [[words[:-4]], "u"],
                      [[{"k": words}]], {"k": ["a", {"k": words}]}):
            assert_same(value)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_plan_renders_as_the_standard_library_does(sample: Path) -> None:
    for built in compiler.build([sample]).built:
        assert_same(built.plan)
        assert built.files["plan.json"].decode() == json.dumps(built.plan, indent=2) + "\n"
        assert built.files["launch.py"].decode().count(pformat(built.plan)) == 1


def test_many_vms_of_one_base_render_as_the_standard_library_does(tmp_path: Path) -> None:
    # Steps shared by every VM (the memo's hits), and steps at each VM's own line (misses).
    source = tmp_path / "vms.hv"
    source.write_text("format 1\nabstract vm b {\n    arch x86_64\n    memory 16M\n    console serial\n}\n"
                      + "".join(f"vm v{i} extends b {{ vcpus {1 + i % 3} }}\n" for i in range(40)))
    result = compiler.build([source])
    assert len(result.built) == 40
    for built in result.built:
        assert built.files["plan.json"].decode() == json.dumps(built.plan, indent=2) + "\n"
        assert launcher.python_literal(built.plan) == pformat(built.plan)


class Colour(enum.IntEnum):
    RED = 1


class LooksLikeADict:
    """An object whose repr is that of a long dict: pprint writes the repr on one line."""

    def __repr__(self) -> str:
        return repr(LONG_DICT)


LONG_DICT = {f"key{i}": "value" * 3 for i in range(8)}


@pytest.mark.parametrize("value", [
    {"long": "word " * 40},  # pprint splits a long string over lines
    {"tuple": (1, 2, 3), "one": (1,)},
    {"set": {1}, "frozen": frozenset()},
    {1: "int key", None: "none key"},
    {"enum": Colour.RED, "nested": [Colour.RED] * 40},
    {"bytes": b"\x00" * 200},
    [float("nan"), float("inf"), -0.0, 1e300, 2 ** 70, -(10 ** 120)],
    {"a": [LONG_DICT, LooksLikeADict()]},
], ids=["long-string", "tuple", "set", "non-str-keys", "int-enum", "bytes", "numbers", "repr-lookalike"])
def test_values_outside_plain_data_render_as_the_standard_library_does(value: Any) -> None:
    assert launcher.python_literal(value) == pformat(value)
    try:
        expected = json.dumps(value, indent=2)
    except (TypeError, ValueError):
        with pytest.raises((TypeError, ValueError)):
            jsontext.dumps(value)
    else:
        assert jsontext.dumps(value) == expected


def test_the_memo_never_takes_a_lookalike_for_what_it_imitates() -> None:
    # LONG_DICT is laid out over lines and remembered; an object with the same repr must still
    # be written as pprint writes it, on one line; an IntEnum as json writes an int.
    launcher.python_literal({"x": [LONG_DICT]})
    assert launcher.python_literal({"x": [LooksLikeADict()]}) == pformat({"x": [LooksLikeADict()]})
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
