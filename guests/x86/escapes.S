/*
 * escapes.S: a guest whose console output attacks what displays it, then
 * halts. It prints terminal escape sequences (OSC window title, clear
 * screen, colours, a raw 8-bit CSI, a UTF-8 C1 CSI), a bidi override, a
 * lone CR that hides text, CR LF line ends, NUL/BEL/BS/DEL, bytes that are
 * not UTF-8, and GitHub Actions / Azure Pipelines log commands (`::error`
 * at a line start, indented, `##[error]` and `##vso[` inside a line), plus
 * text that must pass unchanged (UTF-8, `:` and `#` that are no command).
 * tests/kvm/test_hostile_guests.py checks the launcher's safe rendering of
 * every byte and that --console raw passes them all through.
 * Real mode, position independent, like hello.S.
 */
	.include "real16.inc"		# real_entry
	.code16
	real_entry %bx			# bx = load address
	lea	msg(%bx), %si
	mov	$(msg_end - msg), %cx
	mov	$0x3f8, %dx		# THR, one byte per exit as a polled driver writes
1:	lodsb
	out	%al, %dx
	loop	1b
	hlt
	jmp	.-1

/* Octal escapes: GNU as reads every hex digit after \x, so "\x1bc" would be one byte. */
msg:	.ascii	"\033]0;owned\007title\n"		/* OSC: set the terminal title, BEL */
	.ascii	"\033[2J\033[31mred\033[0m\n"		/* clear screen, colours */
	.byte	0x9b					/* 8-bit CSI: a C1 control byte */
	.ascii	"31m"
	.byte	0xc2, 0x9b				/* U+009B CSI, as UTF-8 */
	.ascii	"1m\n"
	.ascii	"::error file=a.c,line=1::owned\n"	/* a GitHub Actions annotation */
	.ascii	" \t::warning::indented\r\n"		/* leading blanks are trimmed by the runner; CR LF */
	.ascii	"say ##[error]v1 and ##vso[task.complete]x\n"
	.ascii	"hidden\rshown\n"			/* a lone CR */
	.byte	0xe2, 0x80, 0xae			/* U+202E RIGHT-TO-LEFT OVERRIDE */
	.ascii	"txt.exe\n"
	.ascii	"\000\007\010\177"			/* NUL BEL BS DEL */
	.byte	0xff, 0xc3				/* not UTF-8: a stray byte, a truncated sequence */
	.ascii	"\n"
	.ascii	"caf"
	.byte	0xc3, 0xa9				/* U+00E9, valid UTF-8: unchanged */
	.ascii	" a::b # c [d] #[e]\n"			/* no command: unchanged */
	.ascii	":"					/* a line-start colon, then the end */
msg_end:
