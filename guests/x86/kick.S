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
	.code32
	.text
	.globl	_start
_start:
	cli
	mov	$0x80000, %esp		# vCPU 0's stack
	call	base
base:	pop	%ebx
	sub	$(base - _start), %ebx	# ebx = load address

	/* What vCPU 1 needs before it can reach protected mode. */
	sgdt	(gdtr - _start)(%ebx)
	sidt	(idtr - _start)(%ebx)
	lea	(ap32 - _start)(%ebx), %eax
	mov	%eax, (ap32_ptr - _start)(%ebx)

	/* Local APIC: software enable, then INIT and STARTUP to all but self. */
	orl	$0x1ff, 0xfee000f0	# SVR: APIC enabled, spurious vector 0xff
	movl	$0x000c4500, 0xfee00300	# ICR: all excluding self, INIT, assert
	call	icr_idle
	lea	(ap_start - _start)(%ebx), %eax
	shr	$12, %eax		# the STARTUP vector: page number of ap_start
	or	$0x000c4600, %eax	# ICR: all excluding self, STARTUP
	mov	%eax, 0xfee00300
	call	icr_idle

1:	pause				# until vCPU 1 is about to halt
	cmpl	$1, (halting - _start)(%ebx)
	jb	1b

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

2:	pause				# until vCPU 1 has been woken
	cmpl	$1, (woken - _start)(%ebx)
	jb	2b

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

/* take, give: the console lock, so the two vCPUs' lines do not mix. ebx = load address. */
take:	mov	$1, %al
1:	xchg	%al, (console - _start)(%ebx)	# implicitly locked
	test	%al, %al
	jz	2f
	pause
	mov	$1, %al
	jmp	1b
2:	ret

give:	movb	$0, (console - _start)(%ebx)	# a plain store is enough on x86
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

/* vCPU 1, after STARTUP: 32-bit protected mode from here. */
ap32:	mov	$0x18, %ax		# the launcher's flat data segment
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	$0x7f000, %esp
	call	1f
1:	pop	%ebx
	sub	$(1b - _start), %ebx
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

/* Real-mode entry of vCPU 1: CS = the STARTUP page, IP = 0. */
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
