/*
 * hypercalls.S: a 64-bit long-mode guest that makes each KVM hypercall of
 * its table with `vmmcall` (AMD's instruction; KVM rewrites it on Intel)
 * and prints one line per call on the 16550 at 0x3F8:
 *
 *     hypercall 0xc (0x200000, 0x1, 0x0, 0x0) = 0x0
 *
 * the number (rax), the four arguments (rbx, rcx, rdx, rsi) and what rax
 * held afterwards: 0, a count, or a negated KVM_E* code (-1000 is
 * 0xfffffffffffffc18). Then it powers the machine off (SLP_EN to port
 * 0x604): with an in-kernel irqchip a `hlt` would not leave the kernel.
 * Calling convention and codes: Documentation/virt/kvm/x86/hypercalls.rst,
 * docs/kernel-facts.md#x86-hypercalls. Needs `mode long64`; position
 * independent. Tests: tests/x86/ (on kvm_amd in the emulated x86_64 host).
 */
	.include "long64.inc"		# long_entry, uart_routines, power_off
	long_entry
	mov	$0xfee000f0, %eax	# local APIC SVR: software-enable it, or KVM_HC_SEND_IPI delivers nothing
	orl	$0x100, (%rax)		# (without an in-kernel APIC: an MMIO read and write the launcher ignores)
	lea	table(%rip), %r12
next:	cmpq	$-1, (%r12)
	je	off
	lea	msg_hc(%rip), %rsi
	call	puts
	mov	(%r12), %rdx
	call	puthex
	lea	msg_open(%rip), %rsi
	call	puts
	mov	$1, %r13		# arguments 1..4 of the entry
1:	mov	(%r12,%r13,8), %rdx
	call	puthex
	lea	msg_comma(%rip), %rsi
	cmp	$4, %r13
	jne	2f
	lea	msg_close(%rip), %rsi
2:	call	puts
	inc	%r13
	cmp	$4, %r13
	jbe	1b

	mov	(%r12), %rax		# the call: number in rax, arguments in rbx, rcx, rdx, rsi
	mov	8(%r12), %rbx
	mov	16(%r12), %rcx
	mov	24(%r12), %rdx
	mov	32(%r12), %rsi
	vmmcall
	mov	%rax, %rdx
	call	puthex
	mov	$'\n', %al
	call	putc
	add	$40, %r12
	jmp	next

off:	power_off

/* puthex: write rdx as "0x" and its hex digits, without leading zeros. Clobbers rcx, r8. */
puthex:	mov	$'0', %al
	call	putc
	mov	$'x', %al
	call	putc
	mov	$16, %ecx
	xor	%r8d, %r8d		# r8: a digit has been written
1:	rol	$4, %rdx
	mov	%dl, %al
	and	$0x0f, %al
	or	%r8b, %al		# a leading zero, unless it is the last digit, is skipped
	jnz	2f
	cmp	$1, %ecx
	jne	4f
2:	mov	$0x10, %r8b
	and	$0x0f, %al
	add	$'0', %al
	cmp	$'9', %al
	jbe	3f
	add	$('a' - '9' - 1), %al
3:	call	putc
4:	loop	1b
	ret

	uart_routines

msg_hc:		.asciz	"hypercall "
msg_open:	.asciz	" ("
msg_comma:	.asciz	", "
msg_close:	.asciz	") = "

/* number, arguments 1-4 (linux/kvm_para.h numbers); a number of -1 ends the table */
	.balign	8
table:	.quad	1, 0, 0, 0, 0			# KVM_HC_VAPIC_POLL_IRQ
	.quad	5, 0, 0, 0, 0			# KVM_HC_KICK_CPU: flags 0, APIC id 0 (itself)
	.quad	10, 1, 0, 0, 0x30		# KVM_HC_SEND_IPI: bitmap {APIC id 0}, high 0, min 0, ICR vector 0x30
	.quad	11, 0, 0, 0, 0			# KVM_HC_SCHED_YIELD: APIC id 0
	.quad	12, 0x200000, 1, 0, 0		# KVM_HC_MAP_GPA_RANGE: one 4K page at 2 MiB, in guest memory
	.quad	12, 0x40000000, 1, 0, 0		#   at 1 GiB, beyond a 4 MiB guest's memory
	.quad	12, 0x200800, 1, 0, 0		#   not page aligned
	.quad	99, 0, 0, 0, 0			# no such hypercall
	.quad	-1
	.fill	512, 1, 0
stack_top:
