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
	.code32
	.text
	.globl	_start
_start:
	cli
	mov	$0x80000, %esp		# vCPU 0's stack
	call	base
base:	pop	%ebx
	sub	$(base - _start), %ebx	# ebx = load address

	/* What the other vCPUs need before they can reach protected mode. */
	sgdt	(gdtr - _start)(%ebx)
	sidt	(idtr - _start)(%ebx)
	lea	(ap32 - _start)(%ebx), %eax
	mov	%eax, (ap32_ptr - _start)(%ebx)

	call	hello

	/* Local APIC: software enable, then INIT and STARTUP to all but self. */
	orl	$0x1ff, 0xfee000f0	# SVR: APIC enabled, spurious vector 0xff
	movl	$0x000c4500, 0xfee00300	# ICR: all excluding self, INIT, assert
	call	icr_idle
	lea	(ap_start - _start)(%ebx), %eax
	shr	$12, %eax		# the STARTUP vector: page number of ap_start
	or	$0x000c4600, %eax	# ICR: all excluding self, STARTUP
	mov	%eax, 0xfee00300
	call	icr_idle

1:	pause				# wait for the other vCPU
	cmpl	$1, (done - _start)(%ebx)
	jb	1b

	mov	$0x604, %dx		# power off: SLP_EN in PM1a_CNT
	mov	$0x2000, %ax
	out	%ax, %dx
	hlt
	jmp	.-1

/* icr_idle: wait until the local APIC has sent the IPI (ICR delivery status clear). */
icr_idle:
	testl	$0x1000, 0xfee00300
	jnz	icr_idle
	ret

/* hello: "vcpu N: APIC id N, KVM features 0x........" under the lock. ebx = load address. */
hello:	mov	$1, %al
1:	xchg	%al, (lock - _start)(%ebx)	# implicitly locked
	test	%al, %al
	jz	2f
	pause
	mov	$1, %al
	jmp	1b
2:	mov	0xfee00020, %edi	# local APIC ID register: id in bits 31:24
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

/* puts: write the NUL-terminated string at esi. */
puts:	lodsb
	test	%al, %al
	jz	1f
	call	putc
	jmp	puts
1:	ret

/* puthex: write edx as "0x" and eight hex digits. */
puthex:	mov	$'0', %al
	call	putc
	mov	$'x', %al
	call	putc
	mov	$8, %ecx
1:	rol	$4, %edx
	mov	%dl, %al
	and	$0x0f, %al
	add	$'0', %al
	cmp	$'9', %al
	jbe	2f
	add	$('a' - '9' - 1), %al
2:	call	putc
	loop	1b
	ret

/* putc: write al to the UART once it can take a byte. */
putc:	push	%edx
	push	%eax
	mov	$0x3fd, %dx		# LSR
1:	in	%dx, %al
	test	$0x20, %al		# THRE
	jz	1b
	pop	%eax
	mov	$0x3f8, %dx		# THR
	out	%al, %dx
	pop	%edx
	ret

/* The other vCPUs, after STARTUP: 32-bit protected mode from here. */
ap32:	mov	$0x18, %ax		# the launcher's flat data segment
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	$0x7f000, %esp		# one stack: only vCPU 1 comes here in the sample
	call	1f
1:	pop	%ebx
	sub	$(1b - _start), %ebx
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

/* Real-mode entry of the other vCPUs: CS = the STARTUP page, IP = 0. */
	.balign	4096
ap_start:
	.code16
	cli
	mov	%cs, %ax
	mov	%ax, %ds
	lgdtl	(gdtr - ap_start)
	lidtl	(idtr - ap_start)
	mov	%cr0, %eax
	or	$1, %eax		# PE
	mov	%eax, %cr0
	ljmpl	*(ap32_ptr - ap_start)	# far jump through offset:selector below
	.code32
	.balign	8
ap32_ptr:	.long	0		# vCPU 0 writes ap32's address here
		.word	0x10		# the launcher's flat code segment
gdtr:	.word	0			# vCPU 0's GDTR and IDTR, for lgdt/lidt
	.long	0
idtr:	.word	0
	.long	0
