/*
 * kick.S: KVM_HC_KICK_CPU wakes a halted vCPU. Two vCPUs, in-kernel
 * irqchip (tests/x86: the kick cases). vCPU 0 starts in 32-bit protected
 * mode (`mode prot32`) and wakes vCPU 1 with INIT + STARTUP IPIs through its
 * local APIC, as guests/x86/pvspinlock.S does. vCPU 1 prints
 * "vcpu 1: halting", then halts with interrupts off: only a kick can wake it
 * (arch/x86/kvm/x86.c: a pending pv_unhalted makes a halted vCPU runnable).
 * vCPU 0 waits until vCPU 1 has said so, makes the hypercall
 * KVM_HC_KICK_CPU(flags 0, APIC id 1) with `vmmcall` and prints
 * "vcpu 0: KVM_HC_KICK_CPU(1) = 0x........" (eax: 0, or 0xfffffc18 =
 * -KVM_ENOSYS when the kick is gated off); vCPU 1, woken, prints
 * "vcpu 1: woken", and vCPU 0 then powers the machine off (SLP_EN to port
 * 0x604). A kick that arrives before vCPU 1 halts is not lost: its hlt then
 * returns at once, which is what a PV spinlock relies on. Without the kick
 * both wait forever, and the launcher's watchdog ends the run.
 * Load it page-aligned below 1 MiB (the STARTUP vector is a page number).
 * Not linked: addresses are symbol differences added to the load address.
 */
	.include "prot32.inc"		# the entry, uart_routines, power_off, vCPU 1's start
	prot32_entry 0x80000		# vCPU 0's stack
	ap_prepare
	ap_wake
	wait_for halting		# until vCPU 1 is about to halt

	push	%ebx			# the hypercall takes its flags in ebx
	mov	$5, %eax		# KVM_HC_KICK_CPU
	xor	%ebx, %ebx		# flags 0
	mov	$1, %ecx		# APIC id 1
	vmmcall
	pop	%ebx
	mov	%eax, %edx
	call	take
	lea	(msg_kick - _start)(%ebx), %esi
	call	puts
	call	puthex
	mov	$'\n', %al
	call	putc
	call	give

	wait_for woken			# until vCPU 1 has been woken
	power_off

	apic_routines

/* take, give: the console lock, so the two vCPUs' lines do not mix. ebx = load address. */
take:	lock_take console
	ret

give:	movb	$0, (console - _start)(%ebx)	# a plain store is enough on x86
	ret

	uart_routines

/* vCPU 1, after STARTUP: 32-bit protected mode from here. */
ap32:	ap_enter 0x7f000
	call	take
	lea	(msg_halting - _start)(%ebx), %esi
	call	puts
	call	give
	lock incl (halting - _start)(%ebx)
	hlt				# interrupts off: a kick is the only way on
	call	take
	lea	(msg_woken - _start)(%ebx), %esi
	call	puts
	call	give
	lock incl (woken - _start)(%ebx)
3:	hlt
	jmp	3b

msg_kick:	.asciz	"vcpu 0: KVM_HC_KICK_CPU(1) = "
msg_halting:	.asciz	"vcpu 1: halting\n"
msg_woken:	.asciz	"vcpu 1: woken\n"
	.balign	64			# shared words, in a cache line of their own
console:	.long	0
halting:	.long	0
woken:		.long	0

	ap_trampoline			# vCPU 1's real-mode entry, page-aligned
