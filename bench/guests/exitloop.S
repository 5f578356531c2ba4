/*
 * exitloop.S: the exit-cost guest. 16-bit real mode; writes a byte to port
 * 0x80 (the POST port: no console, so launchers ignore it) 200,000 times,
 * each write one KVM_EXIT_IO, then halts (KVM_EXIT_HLT). 200,001 exits in all.
 * Built by bench/exitloop.hv (`guest "guests/exitloop.S" mode real`) and
 * run both by the hvconf launcher and by the C floor (bench/floor/floor.c).
 */
	.code16
	.text
	.globl	_start
_start:
	cli				# no IDT: never take an interrupt
	mov	$200000, %ecx		# operand-size prefix: a 32-bit count in real mode
	xor	%al, %al
1:	out	%al, $0x80		# one exit to userspace, ignored there
	dec	%ecx
	jnz	1b
	hlt				# KVM_EXIT_HLT without an in-kernel irqchip
	jmp	.-1
