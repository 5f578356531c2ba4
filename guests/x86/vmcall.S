/*
 * vmcall.S: prints "before vmcall\n" on the 16550 at 0x3F8, issues the
 * KVM hypercall KVM_HC_VAPIC_POLL_IRQ (nr 1 in eax; KVM returns 0 in eax),
 * prints "vmcall returned XXXXXXXX\n" (eax in hex) and halts.
 * On the nested KVM of the development host a vmcall never returns from
 * KVM_RUN, so this guest is the watchdog's test case (tests/kvm/).
 * Real mode, position independent, like hello.S.
 */
	.code16
	.text
	.globl	_start
_start:
	cli
	xor	%ax, %ax
	mov	%ax, %ds
	call	base
base:	pop	%bp
	sub	$base, %bp		# bp = load address; kept for the whole run

	lea	before(%bp), %si
	mov	$(before_end - before), %cx
	call	puts

	mov	$1, %eax		# KVM_HC_VAPIC_POLL_IRQ
	vmcall				# Intel encoding; KVM rewrites it on AMD
	mov	%eax, %edx		# the result, printed below

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
