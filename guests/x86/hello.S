/*
 * hello.S: the smallest useful x86 guest. Runs in 16-bit real mode,
 * writes "hello from hvconf guest\n" to the 16550 UART at port 0x3F8 and
 * halts. Position independent: it finds its own load address, so a plan
 * may put it anywhere below 64K (the x86 samples use 0x7C00). It needs
 * two bytes of stack at ss:sp as the plan left them.
 * Built by hvconf.emit.guest.assemble(code16=True); tests/test_guest_build.py.
 */
	.code16
	.text
	.globl	_start
_start:
	cli				# no IDT is set up: never take an interrupt
	xor	%ax, %ax
	mov	%ax, %ds		# flat real mode: ds base 0, so [si] is absolute

	/* The image is not linked, so `msg` assembles as its offset in the
	   image. `call` pushes the absolute address of `base`; subtracting
	   the offset of `base` leaves the load address. */
	call	base
base:	pop	%bx
	sub	$base, %bx		# bx = load address (0x7C00 in the samples)
	lea	msg(%bx), %si
	mov	$(msg_end - msg), %cx

putc:	mov	$0x3fd, %dx		# LSR: line status register
1:	in	%dx, %al
	test	$0x20, %al		# bit 5 THRE: transmit holding register empty
	jz	1b
	mov	$0x3f8, %dx		# THR: transmit holding register
	lodsb				# al = [ds:si++]
	out	%al, %dx
	loop	putc

	hlt				# without an in-kernel irqchip: KVM_EXIT_HLT
	jmp	.-1			# a stray wake-up halts again

msg:	.ascii	"hello from hvconf guest\n"
msg_end:
