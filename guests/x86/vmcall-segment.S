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
 * The code is vmcall.S's, with the far return that SEGMENT_HOP adds.
 */
	.code16				# vmcall.S says so too; hvconf wants a real-mode source to say it
	.set	SEGMENT_HOP, 1
	.include "vmcall.S"
