/*
 * vmcall-segment.S: a real-mode `vmcall` with a non-zero CS base. Prints
 * "before vmcall\n" on the 16550 at 0x3F8, far-returns into its own code
 * through CS = load address / 16 (so CS.base is the load address and IP the
 * offset in the image), issues KVM_HC_VAPIC_POLL_IRQ (nr 1 in eax) with the
 * Intel instruction, then prints "vmcall returned XXXXXXXX\n" and halts.
 *
 * It never gets that far. On an AMD host KVM replaces `vmcall` with
 * `vmmcall` and restarts the guest on it, but writes the new bytes at linear
 * address IP instead of CS.base + IP (arch/x86/kvm/x86.c
 * emulator_fix_hypercall writes at kvm_rip_read()), so the guest meets the
 * same `vmcall` again, forever; on the nested development host a vmcall never
 * returns at all. Only the launcher's watchdog ends it
 * (docs/kernel-facts.md#the-emulated-x86_64-host; tests/x86/).
 * Load it at a multiple of 16 below 64 KiB; position independent otherwise.
 */
	.code16
	.text
	.globl	_start
_start:
	cli
	xor	%ax, %ax
	mov	%ax, %ds		# flat data: ds base 0, addresses below are absolute
	call	base
base:	pop	%bp
	sub	$base, %bp		# bp = load address; kept for the whole run

	lea	before(%bp), %si
	mov	$(before_end - before), %cx
	call	puts

	mov	%bp, %ax
	shr	$4, %ax			# the load address as a real-mode segment
	push	%ax			# CS
	push	$segmented		# IP: not linked, so a symbol is its offset in the image
	lret

segmented:
	mov	$1, %eax		# KVM_HC_VAPIC_POLL_IRQ
	vmcall				# Intel encoding: KVM patches it on AMD, at the wrong address
	mov	%eax, %edx

	lea	after(%bp), %si
	mov	$(after_end - after), %cx
	push	%edx
	call	puts
	pop	%edx
	mov	$8, %cx			# eight hex digits, most significant first
hex:	rol	$4, %edx
	mov	%dl, %al
	and	$0x0f, %al
	add	$'0', %al
	cmp	$'9', %al
	jbe	1f
	add	$('a' - '9' - 1), %al
1:	call	putc
	loop	hex
	mov	$'\n', %al
	call	putc

	hlt
	jmp	.-1

/* puts: write cx bytes from ds:si. Clobbers al, si, cx. */
puts:	lodsb
	call	putc
	loop	puts
	ret

/* putc: write al to the UART once it can take a byte. Keeps dx intact. */
putc:	push	%dx
	push	%ax
	mov	$0x3fd, %dx		# LSR
1:	in	%dx, %al
	test	$0x20, %al		# THRE
	jz	1b
	pop	%ax
	mov	$0x3f8, %dx		# THR
	out	%al, %dx
	pop	%dx
	ret

before:	.ascii	"before vmcall\n"
before_end:
after:	.ascii	"vmcall returned "
after_end:
