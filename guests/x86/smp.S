/*
 * smp.S: a 32-bit protected-mode guest for several vCPUs without an
 * in-kernel irqchip, where every vCPU starts at the entry with its index
 * in edi (the plan's KVM_SET_REGS rdi). Each vCPU takes a spinlock,
 * prints "vcpu N: hello from protected mode\n" on the 16550 at 0x3F8,
 * releases the lock and halts; the run ends once every vCPU has halted.
 *
 * Needs `mode prot32`. Position independent; every address is relative to
 * the load address it finds with call/pop (the image is not linked, so it
 * uses symbol differences only). Stacks: 4 KiB per vCPU below 0x80000.
 * Tests: tests/kvm/test_guests.py.
 */
	.include "prot32.inc"		# lock_take, uart_routines
	.code32
	.text
	.globl	_start
_start:
	cli
	mov	%edi, %eax
	shl	$12, %eax
	mov	$0x80000, %esp
	sub	%eax, %esp		# vCPU N: stack top at 0x80000 - N * 4K
	call	base
base:	pop	%ebx
	sub	$(base - _start), %ebx	# ebx = load address

	lock_take lock
	lea	(msg - _start)(%ebx), %esi
	call	puts
	mov	%edi, %eax
	add	$'0', %al
	call	putc
	lea	(msg2 - _start)(%ebx), %esi
	call	puts
	movb	$0, (lock - _start)(%ebx)	# release: a plain store is enough on x86

	hlt
	jmp	.-1

	uart_routines

msg:	.asciz	"vcpu "
msg2:	.asciz	": hello from protected mode\n"
	.balign	64			# the lock in a cache line of its own
lock:	.byte	0
