/*
 * spin.S: a guest that never halts and never exits to userspace: one
 * jump to itself with interrupts off. Only the launcher's watchdog can
 * end it (tests/kvm/test_runtime.py checks it does, within the timeout).
 */
	.code16
	.text
	.globl	_start
_start:
	cli
1:	jmp	1b
