"""The device-tree model (hvconf.emit.fdt) and its DTS text (hvconf.emit.dts), without dtc.

Misuse raises FdtError naming the node; DTS text is checked exactly. dtc and libfdt
reading the same trees back is tests/test_dtb_readback.py.
"""

from __future__ import annotations

import pytest

from hvconf.emit.dts import to_dts
from hvconf.emit.fdt import (
    Bytes,
    Cells,
    Empty,
    FdtError,
    Node,
    Phandles,
    Prop,
    Strings,
    cells,
    cells64,
    reservations,
    strings,
)


# --- names ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "name", ["cpus", "a" * 31, "PowerPC,POWER9@0", "vty@30000000", "a_b.c+d-e,f@1,2", "memory@0"]
)
def test_valid_node_names(name: str) -> None:
    assert Node("/").child(name).name == name


@pytest.mark.parametrize(
    "name", ["", "a" * 32, "a@", "@1", "a b", "cpu\u00e9", "a@b@c", "a/b", "a#b", "/"]
)
def test_invalid_node_names(name: str) -> None:
    with pytest.raises(FdtError, match="invalid node name|root node"):
        Node("/").child(name)


def test_node_name_length_counts_only_the_part_before_the_unit_address() -> None:
    assert Node("a" * 31 + "@" + "f" * 40).name.startswith("a" * 31)


@pytest.mark.parametrize(
    "name",
    ["#address-cells", "ibm,ppc-interrupt-server#s", "linux,stdout-path", "x?", "ibm,associativity-reference-points"],
)
def test_valid_property_names(name: str) -> None:
    assert Node("/").prop(name, Empty()).props[0].name == name


@pytest.mark.parametrize("name", ["", "a@b", "a b", "gr\u00fc\u00dfe", "a/b", "a=b", "a\0"])
def test_invalid_property_names(name: str) -> None:
    with pytest.raises(FdtError, match="invalid property name"):
        Node("/").prop(name, Empty())


# --- duplicates and attachment -------------------------------------------------------------

def test_duplicate_property_names_the_node_path() -> None:
    cpu = Node("/").child("cpus").child("PowerPC,POWER9@0").prop("reg", cells(0))
    with pytest.raises(FdtError, match=r"^/cpus/PowerPC,POWER9@0: duplicate property 'reg'$"):
        cpu.prop("reg", cells(1))


def test_duplicate_child() -> None:
    root = Node("/")
    root.child("chosen")
    with pytest.raises(FdtError, match="duplicate child node 'chosen'"):
        root.child("chosen")


def test_property_and_child_may_not_share_a_name() -> None:
    root = Node("/").prop("rtas", Empty())
    with pytest.raises(FdtError, match="same name as a property"):
        root.child("rtas")
    root.child("vdevice")
    with pytest.raises(FdtError, match="same name as a child"):
        root.prop("vdevice", Empty())


def test_a_node_is_attached_once_and_never_in_a_cycle() -> None:
    root = Node("/")
    cpus = root.child("cpus")
    with pytest.raises(FdtError, match="already attached"):
        Node("/").add(cpus)
    loose = Node("a")
    inner = loose.child("b")
    with pytest.raises(FdtError, match="cycle"):
        inner.add(loose)
    with pytest.raises(FdtError, match="root node"):
        root.add(Node("/"))
    with pytest.raises(FdtError, match="can only add a Node"):
        root.add("chosen")  # type: ignore[arg-type]


# --- values ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "values, bits, match",
    [
        ((1 << 32,), 32, "does not fit in u32"),
        ((-1,), 32, "does not fit in u32"),
        ((1 << 16,), 16, "does not fit in u16"),
        ((True,), 32, "must be an int"),
        ((1.0,), 32, "must be an int"),
        ((), 32, "non-empty"),
        ((1,), 12, "cell width"),
    ],
)
def test_bad_cells(values: tuple, bits: int, match: str) -> None:
    with pytest.raises(FdtError, match=match):
        Cells(values, bits)


def test_cell_encodings_are_big_endian() -> None:
    assert cells(1, 0x30000000).encoded == bytes.fromhex("00000001 30000000")
    assert Cells((0x1234,), 16).encoded == b"\x12\x34"
    assert Cells((0xAB, 1), 8).encoded == b"\xab\x01"
    assert Cells((0x0102030405060708,), 64).encoded == bytes(range(1, 9))
    assert cells(0xFFFFFFFF).values == (0xFFFFFFFF,)


def test_cells64_splits_high_word_first() -> None:
    assert cells64(0, 4 << 30).values == (0, 0, 1, 0)
    assert cells64((1 << 64) - 1).values == (0xFFFFFFFF, 0xFFFFFFFF)
    with pytest.raises(FdtError, match="64-bit value"):
        cells64(1 << 64)
    with pytest.raises(FdtError, match="64-bit value"):
        cells64(-1)


@pytest.mark.parametrize(
    "values, match",
    [(("a\0b",), "contains NUL"), (("caf\u00e9",), "not ASCII"), ((), "at least one"), ((b"x",), "must be a str")],
)
def test_bad_strings(values: tuple, match: str) -> None:
    with pytest.raises(FdtError, match=match):
        Strings(values)


def test_string_lists_are_nul_terminated_each() -> None:
    assert strings("hcall-pft", "", "hcall-term").encoded == b"hcall-pft\0\0hcall-term\0"


def test_bad_bytes_and_values() -> None:
    with pytest.raises(FdtError, match="non-empty bytes"):
        Bytes(b"")
    with pytest.raises(FdtError, match="non-empty bytes"):
        Bytes(bytearray(b"x"))  # type: ignore[arg-type]
    with pytest.raises(FdtError, match="value must be Empty, Cells, Strings or Bytes"):
        Prop("reg", 5)  # type: ignore[arg-type]
    with pytest.raises(FdtError, match="source must be"):
        Prop("reg", cells(0), ("g.hv", 1, 2))  # type: ignore[arg-type]
    with pytest.raises(FdtError, match="source must be"):
        Node("cpus", 3)  # type: ignore[arg-type]


def test_reservations_are_u64_pairs() -> None:
    assert reservations([(0x1000, 0x2000)]) == ((0x1000, 0x2000),)
    for bad in ([(1,)], [(1, 1 << 64)], [(-1, 0)], [5]):
        with pytest.raises(FdtError, match="memory reservation"):
            reservations(bad)  # type: ignore[arg-type]


# --- lookup, order, phandles -------------------------------------------------------------

def _small_tree() -> Node:
    root = Node("/", "g.hv:1:1")
    root.prop("#address-cells", cells(2)).prop("#size-cells", cells(2))
    vdevice = root.child("vdevice", "g.hv:4:5")
    vdevice.child("vty@30000000", "g.hv:5:9").prop("reg", cells(0x30000000), "g.hv:5:13")
    root.child("chosen").prop("bootargs", strings("console=hvc0"))
    return root


def test_find_and_paths() -> None:
    root = _small_tree()
    vty = root.find("/vdevice/vty@30000000")
    assert vty.path == "/vdevice/vty@30000000"
    assert vty.find("/chosen").path == "/chosen"
    assert root.find("vdevice").find("vty@30000000") is vty
    assert root.find("/") is root
    assert vty.value("reg") == cells(0x30000000)
    with pytest.raises(FdtError, match=r"no node 'vty@3' under '/vdevice'"):
        root.find("/vdevice/vty@3")
    with pytest.raises(FdtError, match="no property 'compatible'"):
        vty.value("compatible")


def test_order_is_insertion_order() -> None:
    node = Node("/").prop("z", Empty()).prop("a", Empty()).prop("m", Empty())
    node.child("zz")
    node.child("aa")
    assert [p.name for p in node.props] == ["z", "a", "m"]
    assert [n.path for n in node.walk()] == ["/", "/zz", "/aa"]


def test_phandles_are_unique_per_allocator() -> None:
    root = Node("/")
    alloc = Phandles()
    assert alloc.assign(root.child("intc"), fixed=0x1111) == 0x1111
    assert alloc.assign(root.child("a")) == 1
    assert alloc.assign(root.child("b"), fixed=2) == 2
    assert alloc.assign(root.child("c")) == 3  # skips the fixed 2
    assert root.find("/c").value("phandle") == cells(3)
    with pytest.raises(FdtError, match=r"phandle 0x1111 already used by /intc"):
        alloc.assign(root.child("d"), fixed=0x1111)
    for bad in (0, 0xFFFFFFFF):
        with pytest.raises(FdtError, match="not in 1..0xfffffffe"):
            alloc.assign(root.child(f"e{bad}"), fixed=bad)
    assert Phandles().assign(Node("/").child("x")) == 1  # no shared global counter


# --- DTS text ---------------------------------------------------------------------------

EXPECTED_DTS = """\
// generated by hvconf; do not edit
//
// from g.hv
/dts-v1/;
/memreserve/ 0x1000 0x2000;

/ { /* g.hv:1:1 */
\t#address-cells = <2>;
\t#size-cells = <2>;
\tflags; /* g.hv:2:1 */
\tsmall = /bits/ 16 <9 0xa 0xffff>;
\traw = [de ad 00];
\tpair = <0 0x19>;

\tvdevice { /* g.hv:4:5 */

\t\tvty@30000000 { /* g.hv:5:9 */
\t\t\treg = <0x30000000>; /* g.hv:5:13 */
\t\t};
\t};

\tchosen {
\t\tbootargs = "console=hvc0";
\t};
};
"""


def test_dts_layout_numbers_and_comments() -> None:
    root = _small_tree()
    root.prop("flags", Empty(), "g.hv:2:1").prop("small", Cells((9, 10, 0xFFFF), 16))
    root.prop("raw", Bytes(b"\xde\xad\x00")).prop("pair", cells(0, 25))
    text = to_dts(root, header_comment="generated by hvconf; do not edit\n\nfrom g.hv", reserve=[(0x1000, 0x2000)])
    assert text == EXPECTED_DTS


@pytest.mark.parametrize(
    "value, dts",
    [
        ('say "hi"', r'"say \"hi\""'),
        ("C:\\dir", r'"C:\\dir"'),
        ("a\nb\tc", r'"a\nb\tc"'),
        ("\x01\x1f\x7f\r", r'"\x01\x1f\x7f\x0d"'),
        ("\x0aff", r'"\nff"'),
        ("", '""'),
        ("~ !#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}", "\"~ !#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}\""),
    ],
)
def test_string_escaping(value: str, dts: str) -> None:
    text = to_dts(Node("/").prop("s", strings(value, "x")))
    assert f"\ts = {dts}, \"x\";\n" in text


def test_comments_stay_closed_ascii_and_on_one_line() -> None:
    root = Node("/", "dir*/x\u00e9.hv:1:1").prop("a", Empty(), "a\nb.hv:2:2")
    text = to_dts(root, header_comment="caf\u00e9 \x07")
    assert text.isascii()
    assert "/ { /* dir*\\/x\\xe9.hv:1:1 */\n" in text
    assert "\ta; /* a?b.hv:2:2 */\n" in text
    assert text.startswith("// caf\\xe9 ?\n/dts-v1/;\n")


def test_to_dts_needs_the_root() -> None:
    root = _small_tree()
    with pytest.raises(FdtError, match="needs the root node"):
        to_dts(root.find("/chosen"))
    with pytest.raises(FdtError, match="memory reservation"):
        to_dts(root, reserve=[(0, 1 << 64)])


def test_dts_is_deterministic() -> None:
    assert to_dts(_small_tree(), header_comment="h") == to_dts(_small_tree(), header_comment="h")
