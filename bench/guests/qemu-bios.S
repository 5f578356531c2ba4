/*
 * qemu-bios.S: the QEMU comparison guest, 16 bytes at the x86 reset vector.
 * QEMU maps a -bios image so that it ends at 4 GiB; the CPU starts 16 bytes
 * below that (cs base 0xFFFF0000, ip 0xFFF0) in real mode. The guest writes
 * 'A' to COM1 (0x3F8), then writes 0 to an isa-debug-exit device at 0xF4,
 * which makes QEMU exit with status (0 << 1) | 1 = 1; the HLT after it is
 * never reached unless the device is missing. bench/suites/launch.py pads the
 * image to the 64 KiB QEMU requires, code last.
 */
	.code16
	.text
	.globl	_start
_start:
	mov	$0x3f8, %dx
	mov	$'A', %al
	out	%al, %dx		# one character on the serial port
	xor	%al, %al
	out	%al, $0xf4		# isa-debug-exit: QEMU exits with status 1
	cli
	hlt
	jmp	.-1
	.balign	16, 0xf4		# exactly 16 bytes, the rest HLT
