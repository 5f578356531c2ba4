/*
 * cpuid.S: a 64-bit long-mode guest that prints what KVM's CPUID leaves
 * 0x40000000 (signature) and 0x40000001 (PV feature bits) show it:
 *
 *     cpuid 0x40000000: max 0x40000001 signature "KVMKVMKVM"
 *     cpuid 0x40000001: eax 0x00000080 edx 0x00000000
 *
 * on the 16550 at 0x3F8, then halts. Needs `mode long64` (the launcher's
 * identity-mapped page tables); position independent (RIP-relative), its
 * stack is the end of its own image. Tests: tests/kvm/test_guests.py.
 */
	.include "long64.inc"		# long_entry, uart_routines, puthex32
	long_entry

	lea	leaf0(%rip), %rsi
	call	puts
	mov	$0x40000000, %eax
	xor	%ecx, %ecx
	cpuid
	mov	%ebx, sig(%rip)		# ebx, ecx, edx: 12 ASCII bytes, NUL padded
	mov	%ecx, sig+4(%rip)
	mov	%edx, sig+8(%rip)
	mov	%eax, %edx
	call	puthex
	lea	quote(%rip), %rsi
	call	puts
	lea	sig(%rip), %rsi
	call	puts
	lea	endq(%rip), %rsi
	call	puts

	lea	leaf1(%rip), %rsi
	call	puts
	mov	$0x40000001, %eax
	xor	%ecx, %ecx
	cpuid
	push	%rdx
	mov	%eax, %edx
	call	puthex
	lea	edxs(%rip), %rsi
	call	puts
	pop	%rdx
	call	puthex
	mov	$'\n', %al
	call	putc

	hlt
	jmp	.-1

	puthex32
	uart_routines

leaf0:	.asciz	"cpuid 0x40000000: max "
quote:	.asciz	" signature \""
endq:	.asciz	"\"\n"
leaf1:	.asciz	"cpuid 0x40000001: eax "
edxs:	.asciz	" edx "
sig:	.fill	13, 1, 0		# 12 signature bytes and a NUL
	.balign	16
	.fill	512, 1, 0
stack_top:
