/*
 * vmcall.S: prints "before vmcall\n" on the 16550 at 0x3F8, issues the
 * KVM hypercall KVM_HC_VAPIC_POLL_IRQ (nr 1 in eax; KVM returns 0 in eax),
 * prints "vmcall returned XXXXXXXX\n" (eax in hex) and halts.
 * On the nested KVM of the development host a vmcall never returns from
 * KVM_RUN, so this guest is the watchdog's test case (tests/kvm/).
 * Real mode, position independent, like hello.S. guests/x86/vmcall-segment.S
 * makes the same call with a non-zero CS base.
 */
	.include "real16.inc"		# real_entry, vmcall_before, vmcall_after
	.code16
	real_entry %bp			# bp = load address; kept for the whole run
	vmcall_before			# "before vmcall\n"

	mov	$1, %eax		# KVM_HC_VAPIC_POLL_IRQ
	vmcall				# Intel encoding; KVM rewrites it on AMD (vmcall-segment.S: at the wrong address)

	vmcall_after			# "vmcall returned XXXXXXXX\n", halt; the routines and texts
