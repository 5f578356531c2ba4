"""The Linux `_IOC` ioctl request encoding, per ABI, as data plus encode/decode.

Two layouts exist for the arches hvconf targets: asm-generic (x86_64, s390x)
and powerpc (`arch/powerpc/include/uapi/asm/ioctl.h`). They differ in the
width and position of the direction field, its values, and the size width.
This module knows nothing about KVM names or structs. Tests: tests/test_abi.py.
"""

from __future__ import annotations

from typing import Literal

from hvconf.abi.errors import AbiError
from hvconf.record import Record

Direction = Literal["none", "r", "w", "rw"]

# Direction as the header macro declares it: _IO, _IOR, _IOW, _IOWR.
MACRO_OF_DIRECTION: dict[str, str] = {"none": "_IO", "r": "_IOR", "w": "_IOW", "rw": "_IOWR"}


class IocLayout(Record):
    """Field widths/shifts and direction values of one `_IOC` ABI."""

    __slots__ = ("name", "size_bits", "dir_bits", "dir_shift", "none", "read", "write", "nr_bits", "type_bits",
                 "nr_shift", "type_shift", "size_shift")
    _defaults = {"nr_bits": 8, "type_bits": 8, "nr_shift": 0, "type_shift": 8, "size_shift": 16}
    name: str
    size_bits: int
    dir_bits: int
    dir_shift: int
    none: int
    read: int
    write: int
    nr_bits: int
    type_bits: int
    nr_shift: int
    type_shift: int
    size_shift: int

    @property
    def max_size(self) -> int:
        return (1 << self.size_bits) - 1

    def dir_value(self, direction: str) -> int:
        """The number stored in the dir field for `direction`."""
        values = {"none": self.none, "r": self.read, "w": self.write, "rw": self.read | self.write}
        try:
            return values[direction]
        except KeyError:
            raise AbiError(
                f"ioctl direction {direction!r} is not one of none, r, w, rw"
            ) from None

    def direction_of(self, value: int) -> str:
        """Inverse of dir_value; AbiError for a dir field no macro produces."""
        for direction in ("none", "r", "w", "rw"):
            if self.dir_value(direction) == value:
                return direction
        raise AbiError(f"dir field {value:#x} is not a valid {self.name} _IOC direction")


# asm-generic/ioctl.h: _IOC_SIZEBITS 14, _IOC_DIRBITS 2 @30, NONE 0, WRITE 1, READ 2.
GENERIC = IocLayout("generic", size_bits=14, dir_bits=2, dir_shift=30, none=0, read=2, write=1)
# powerpc asm/ioctl.h: _IOC_SIZEBITS 13, _IOC_DIRBITS 3 @29, NONE 1, READ 2, WRITE 4.
POWERPC = IocLayout("powerpc", size_bits=13, dir_bits=3, dir_shift=29, none=1, read=2, write=4)

LAYOUTS: dict[str, IocLayout] = {GENERIC.name: GENERIC, POWERPC.name: POWERPC}


class Ioc(Record):
    """A decoded request number."""

    __slots__ = ("direction", "type_", "nr", "size")
    direction: str
    type_: int
    nr: int
    size: int

    @property
    def macro(self) -> str:
        return MACRO_OF_DIRECTION[self.direction]


def layout(which: IocLayout | str) -> IocLayout:
    """Accept a layout or its name ("generic" / "powerpc")."""
    if isinstance(which, IocLayout):
        return which
    try:
        return LAYOUTS[which]
    except KeyError:
        raise AbiError(f"unknown _IOC layout {which!r}; known: {', '.join(LAYOUTS)}") from None


def _check_field(what: str, value: int, bits: int) -> None:
    if not 0 <= value < (1 << bits):
        raise AbiError(f"ioctl {what} {value} does not fit in {bits} bits (max {(1 << bits) - 1})")


def encode(which: IocLayout | str, direction: str, type_: int, nr: int, size: int) -> int:
    """`_IOC(dir, type, nr, size)` for `which` layout, as the header macro computes it.

    `_IO` carries no size, so direction "none" with a non-zero size is refused
    rather than silently producing a number no header defines.
    """
    lay = layout(which)
    dir_value = lay.dir_value(direction)
    if direction == "none" and size != 0:
        raise AbiError(f"_IO request cannot carry a size (got {size})")
    _check_field("type", type_, lay.type_bits)
    _check_field("nr", nr, lay.nr_bits)
    if not 0 <= size <= lay.max_size:
        raise AbiError(
            f"argument size {size} does not fit the {lay.size_bits}-bit size field of the "
            f"{lay.name} _IOC layout (max {lay.max_size})"
        )
    return (
        (dir_value << lay.dir_shift)
        | (size << lay.size_shift)
        | (type_ << lay.type_shift)
        | (nr << lay.nr_shift)
    )


def decode(which: IocLayout | str, request: int) -> Ioc:
    """Split `request` into direction/type/nr/size under `which` layout."""
    lay = layout(which)
    if not 0 <= request < (1 << 32):
        raise AbiError(f"ioctl request {request:#x} is not a 32-bit number")

    def field(shift: int, bits: int) -> int:
        return (request >> shift) & ((1 << bits) - 1)

    ioc = Ioc(
        direction=lay.direction_of(field(lay.dir_shift, lay.dir_bits)),
        type_=field(lay.type_shift, lay.type_bits),
        nr=field(lay.nr_shift, lay.nr_bits),
        size=field(lay.size_shift, lay.size_bits),
    )
    if ioc.direction == "none" and ioc.size:
        raise AbiError(f"ioctl request {request:#x}: _IO with a non-zero size field")
    return ioc
