"""hvconf.emit.guest: guest sources assembled into flat images with GNU as/objcopy."""

from __future__ import annotations

from pathlib import Path

import re

import pytest

from hvconf.emit.guest import GuestBuildError, assemble

GUESTS = Path(__file__).resolve().parent.parent / "guests" / "x86"


def test_hello_image_starts_and_ends_as_written():
    image = assemble(GUESTS / "hello.S", code16=True)
    # cli; xor %ax,%ax; mov %ax,%ds; call (next) -- 16-bit encodings, no 0x66 prefixes
    assert image.startswith(bytes.fromhex("fa 31c0 8ed8 e80000"))
    assert image.endswith(b"hello from hvconf guest\n")
    assert b"\xf4" in image  # hlt
    assert len(image) < 128


def test_images_are_deterministic(tmp_path):
    first = assemble(GUESTS / "hello.S", code16=True)
    copy = tmp_path / "elsewhere.S"
    copy.write_bytes((GUESTS / "hello.S").read_bytes())
    assert assemble(GUESTS / "hello.S", code16=True) == first == assemble(copy, code16=True)


@pytest.mark.parametrize("guest", sorted(p.name for p in GUESTS.glob("*.S")))
def test_every_x86_guest_assembles(guest):
    # real-mode guests announce themselves with .code16; the others are 32/64-bit code
    code16 = re.search(r"^\s*\.code16\b", (GUESTS / guest).read_text(), re.M) is not None
    assert assemble(GUESTS / guest, code16=code16)


def test_syntax_error_reports_file_and_line(tmp_path):
    bad = tmp_path / "bad.S"
    bad.write_text(".code16\n\tcli\n\tmovx %ax, %bx\n\thlt\n")
    with pytest.raises(GuestBuildError) as caught:
        assemble(bad, code16=True)
    assert f"{bad}:3: Error:" in str(caught.value)
    assert "movx" in str(caught.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("\tcli\n\thlt\n", "no `.code16` directive"),
        (".code16\n\tjmp elsewhere\n", "undefined symbols elsewhere"),
        (".code16\n\thlt\n\t.data\n\t.byte 1\n", "move .data into .text"),
    ],
)
def test_sources_that_would_build_a_wrong_image_are_refused(tmp_path, source, message):
    path = tmp_path / "guest.S"
    path.write_text(source)
    with pytest.raises(GuestBuildError, match=message):
        assemble(path, code16=True)


def test_64_bit_code_is_assembled_without_code16(tmp_path):
    path = tmp_path / "long.S"
    path.write_text("\tmov $1, %rax\n\thlt\n")
    assert assemble(path, code16=False) == bytes.fromhex("48c7c001000000 f4")


def test_unknown_arch_and_missing_file_are_build_errors(tmp_path):
    with pytest.raises(GuestBuildError, match="no guest toolchain for arch 's390x'"):
        assemble(GUESTS / "hello.S", arch="s390x", code16=False)
    with pytest.raises(GuestBuildError, match="ppc64le has no 16-bit mode"):
        assemble(GUESTS / "hello.S", arch="ppc64le", code16=True)
    with pytest.raises(GuestBuildError, match="hello.S:9: Error: unknown pseudo-op: `.code16'"):
        assemble(GUESTS / "hello.S", arch="ppc64le", code16=False)  # x86 source, PowerPC assembler
    with pytest.raises(GuestBuildError, match="cannot read guest source"):
        assemble(tmp_path / "absent.S", code16=True)


def test_the_papr_guest_assembles_for_ppc64le_and_starts_like_linux():
    image = assemble(GUESTS.parent / "ppc64" / "papr.S", arch="ppc64le", code16=False)
    # FIXUP_ENDIAN at both entries: `tdi 0,0,0x48` assembled little-endian reads as `b .+8` big-endian
    assert image[0:4] == image[0x60:0x64] == bytes.fromhex("48000008")
    assert int.from_bytes(image[0:4], "big") == 0x48000008 and int.from_bytes(image[0:4], "little") == 0x08000048
    assert len(image) % 8 == 0 and len(image) < 0x7000  # below the guest's mailbox and RTAS block
