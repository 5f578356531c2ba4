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
 * The code is vmcall.S's plus the far return: what they share is in
 * real16.inc's macros, the far return and the vmcall are written out here
 * so that the source hvconf checks shows both (real-mode-hypercall-segment
 * reads the guest's own source, not what it includes).
 */
	.include "real16.inc"		# real_entry, vmcall_before, vmcall_after
	.code16
	real_entry %bp			# bp = load address; kept for the whole run
	vmcall_before			# "before vmcall\n"

	mov	%bp, %ax
	shr	$4, %ax			# the load address as a real-mode segment
	push	%ax			# CS
	push	$segmented		# IP: not linked, so a symbol is its offset in the image
	lret

segmented:
	mov	$1, %eax		# KVM_HC_VAPIC_POLL_IRQ
	vmcall				# Intel encoding: KVM patches it on AMD, at the wrong address

	vmcall_after			# "vmcall returned XXXXXXXX\n", halt; the routines and texts
