/*
 * pvspinlock.S: a two-vCPU guest for a VM with the in-kernel irqchip
 * (samples/x86-pvspinlock.hv). With an in-kernel local APIC, KVM keeps
 * every vCPU but 0 waiting for INIT/SIPI, as a PC does, so:
 *
 *  - vCPU 0 starts in 32-bit protected mode (`mode prot32`), prints
 *    "vcpu 0: APIC id 0, KVM features 0x........" under a spinlock,
 *    wakes the others with INIT + STARTUP IPIs through its local APIC at
 *    0xFEE00000, waits until they have printed too, and powers the
 *    machine off (SLP_EN to port 0x604, which the launcher serves);
 *  - the others start in real mode at the page `ap_start` (the SIPI
 *    vector), load vCPU 0's GDT and IDT, enter protected mode, print the
 *    same line with their own APIC id, count themselves done and halt.
 *
 * The lock spins with `pause`; a PV spinlock would halt and be woken with
 * KVM_HC_KICK_CPU, but a vmcall never returns on the nested development
 * host (docs/kernel-facts.md#the-x86_64-host). Load it page-aligned below 1 MiB (the sample
 * uses `at 0x10000`): the STARTUP vector is a page number below 1 MiB.
 * Not linked: addresses are symbol differences added to the load address.
 * Tests: tests/kvm/test_guests.py.
 */
	.include "prot32.inc"		# the entry, uart_routines, power_off, the other vCPUs' start
	prot32_entry 0x80000		# vCPU 0's stack
	ap_prepare
	call	hello
	ap_wake
	wait_for done			# wait for the other vCPU
	power_off

	apic_routines

/* hello: "vcpu N: APIC id N, KVM features 0x........" under the lock. ebx = load address. */
hello:	lock_take lock
	mov	0xfee00020, %edi	# local APIC ID register: id in bits 31:24
	shr	$24, %edi
	lea	(msg_vcpu - _start)(%ebx), %esi
	call	puts
	mov	%edi, %eax
	add	$'0', %al
	call	putc
	lea	(msg_apic - _start)(%ebx), %esi
	call	puts
	mov	%edi, %eax
	add	$'0', %al
	call	putc
	lea	(msg_feat - _start)(%ebx), %esi
	call	puts
	push	%ebx			# cpuid writes ebx, which holds the load address
	mov	$0x40000001, %eax
	xor	%ecx, %ecx
	cpuid
	pop	%ebx
	mov	%eax, %edx
	call	puthex
	mov	$'\n', %al
	call	putc
	movb	$0, (lock - _start)(%ebx)	# release: a plain store is enough on x86
	ret

	uart_routines

/* The other vCPUs, after STARTUP: 32-bit protected mode from here. */
ap32:	ap_enter 0x7f000		# one stack: only vCPU 1 comes here in the sample
	call	hello
	lock incl (done - _start)(%ebx)
2:	hlt
	jmp	2b

msg_vcpu:	.asciz	"vcpu "
msg_apic:	.asciz	": APIC id "
msg_feat:	.asciz	", KVM features "
	.balign	64			# shared words, in a cache line of their own
lock:	.long	0
done:	.long	0			# vCPUs other than 0 that have printed

	ap_trampoline			# the other vCPUs' real-mode entry, page-aligned
