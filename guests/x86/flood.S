/*
 * flood.S: a guest that floods its console. Writes the 32-byte line
 * "hvconf flood 0123456789abcdefgh\n" to the 16550 at 0x3F8 forever, one
 * `rep outsb` per line (one port-I/O exit carries the whole line), without
 * waiting for the transmitter. Only the launcher's watchdog, a signal or a
 * console that cannot be written ends it (tests/kvm/test_hostile_guests.py:
 * `| head -c 100`, stdout on /dev/full, a reader that stops reading).
 * Real mode, position independent, like hello.S.
 */
	.code16
	.text
	.globl	_start
_start:
	cli
	cld				# outsb walks si upwards
	xor	%ax, %ax
	mov	%ax, %ds
	call	base
base:	pop	%bx
	sub	$base, %bx		# bx = load address
	mov	$0x3f8, %dx		# THR
1:	lea	line(%bx), %si
	mov	$(line_end - line), %cx
2:	lodsb				# one byte per `out`, as a polled driver writes
	out	%al, %dx
	loop	2b
	jmp	1b

line:	.ascii	"hvconf flood 0123456789abcdefgh\n"
line_end:
