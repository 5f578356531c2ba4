# A small sPAPR test guest (ppc64le, real mode: MSR[IR] = MSR[DR] = 0), flat image loaded at 0.
#
# Entered like a kernel: vCPU 0 at 0 with r3 = the device tree, the others at 0x60
# with r3 = their id, big-endian (MSR = SF|ME); both entries switch to little-endian
# first, as Linux's FIXUP_ENDIAN does. It prints through the hvterm console
# (H_PUT_TERM_CHAR to terminal 0), runs the checks the words of /chosen/bootargs ask
# for, and powers off through RTAS with the "power-off" token it finds in the device
# tree, so the definition alone decides every path:
#   hcalls  H_SET_MODE(CIABR): 0 when the kernel serves it, H_FUNCTION (-2) from the launcher
#   tce     H_PUT_TCE/H_GET_TCE on LIOBN 0x80000000 and on the undeclared LIOBN 0x12340000
#   smp     waits for vCPU 1 to report in
#   le      H_SET_MODE(LE): interrupts little-endian, which the launcher serves (LPCR[ILE])
#   dma64   the 64-bit DMA window of LIOBN 0x80000100 (16M pages from bus address 2^59):
#           H_PUT_TCE, H_PUT_TCE_INDIRECT, H_STUFF_TCE, H_GET_TCE, one put past its end
#   reboot  counts its boots at BOOTS (RAM the image does not cover, which a restart
#           keeps, as QEMU's system reset does): RTAS system-reboot on the first,
#           power-off on the next; with `forever` too, system-reboot on every boot
# Unlinked: every address is computed from r30 (the load address), never relocated.

    .machine power9
    .text
    .globl _start

    .set H_GET_TCE, 0x1C
    .set H_PUT_TCE, 0x20
    .set H_PUT_TERM_CHAR, 0x58
    .set H_STUFF_TCE, 0x138
    .set H_PUT_TCE_INDIRECT, 0x13C
    .set H_SET_MODE, 0x31C
    .set H_RTAS, 0xF000
    .set LIOBN_DECLARED, 0x80000000
    .set LIOBN_UNDECLARED, 0x12340000
    .set LIOBN_DMA64, 0x80000100
    .set DMA64_HIGH, 0x0800    # the window's bus address 2^59, as (DMA64_HIGH << 48)
    .set TCE_LIST, 0x6000      # H_PUT_TCE_INDIRECT's list: 4K-aligned, outside the image
    .set BOOTS, 0x7F00         # the reboot check's boot counter
    .set MAILBOX, 0x7000       # vCPU 1 stores 1 here once it runs
    .set RTAS_ARGS, 0x7800     # the RTAS argument block
    .set STACK, 0x10000        # vCPU 0; vCPU n uses STACK + n * 0x1000

    .macro FIXUP_ENDIAN        # Linux arch/powerpc/include/asm/ppc_asm.h
    tdi   0,0,0x48             # big-endian: b . + 8
    b     191f                 # little-endian already
    .long 0xa600607d           # mfmsr r11
    .long 0x01006b69           # xori r11,r11,1
    .long 0x00004039           # li r10,0
    .long 0x6401417d           # mtmsrd r10,1
    .long 0x05009f42           # bcl 20,31,$+4
    .long 0xa602487d           # mflr r10
    .long 0x14004a39           # addi r10,r10,20
    .long 0xa6035a7d           # mtsrr0 r10
    .long 0xa6037b7d           # mtsrr1 r11
    .long 0x2400004c           # rfid
191:
    .endm

    .macro BASE                # r30 = where _start was loaded
    bl    192f
192: mflr  r30
    addi  r30, r30, _start - 192b
    .endm

    .macro ENTER32             # a 32-byte frame with the link register saved; leave32 pops it
    mflr  r0
    std   r0, -8(r1)
    stdu  r1, -32(r1)
    .endm

    .macro ADDR reg, label     # \reg = run-time address of \label
    addi  \reg, r30, \label - _start
    .endm

    .macro IOBA64 reg, page    # \reg = bus address of 16M page \page (< 128) of the 64-bit window
    lis   \reg, DMA64_HIGH
    sldi  \reg, \reg, 32
    addis \reg, \reg, (\page) * 0x100
    .endm

    .macro LIOBN64 reg
    lis   \reg, LIOBN_DMA64@h
    ori   \reg, \reg, LIOBN_DMA64@l
    rldicl \reg, \reg, 0, 32    # lis sign-extends 0x8000: keep the low 32 bits
    .endm

    .macro TCE16M reg, gpa_m   # \reg = a TCE: guest address \gpa_m MiB (a 16M multiple), read and write
    lis   \reg, (\gpa_m) * 0x10
    ori   \reg, \reg, 3
    .endm

_start:
    FIXUP_ENDIAN
    b     primary

    .org  0x60
secondary_entry:
    FIXUP_ENDIAN
    b     secondary

primary:
    mr    r31, r3              # the device tree
    BASE
    lis   r1, STACK@h
    ADDR  r3, s_hello
    bl    puts
    ADDR  r3, s_bootargs
    bl    find_prop
    mr    r29, r3              # bootargs, or 0
    cmpdi r29, 0
    bne   1f
    ADDR  r29, s_empty
1:
    mr    r3, r29
    ADDR  r4, s_w_hcalls
    bl    contains
    cmpdi r3, 0
    beq   2f
    bl    check_hcalls
2:
    mr    r3, r29
    ADDR  r4, s_w_tce
    bl    contains
    cmpdi r3, 0
    beq   3f
    bl    check_tce
3:
    mr    r3, r29
    ADDR  r4, s_w_smp
    bl    contains
    cmpdi r3, 0
    beq   4f
    bl    check_smp
4:
    mr    r3, r29
    ADDR  r4, s_w_le
    bl    contains
    cmpdi r3, 0
    beq   5f
    bl    check_le
5:
    mr    r3, r29
    ADDR  r4, s_w_dma64
    bl    contains
    cmpdi r3, 0
    beq   6f
    bl    check_dma64
6:
    mr    r3, r29
    ADDR  r4, s_w_reboot
    bl    contains
    cmpdi r3, 0
    beq   7f
    bl    check_reboot
7:
    b     power_off

# --- the checks ------------------------------------------------------------------------

check_hcalls:
    ENTER32
    li    r3, H_SET_MODE
    li    r4, 0                # mflags
    li    r5, 1                # H_SET_MODE_RESOURCE_SET_CIABR
    li    r6, 0
    li    r7, 0
    sc    1
    mr    r4, r3
    ADDR  r3, s_set_mode
    bl    report
    b     leave32

check_le:
    ENTER32
    li    r3, H_SET_MODE
    li    r4, 1                # mflags 1: little-endian
    li    r5, 4                # H_SET_MODE_RESOURCE_LE
    li    r6, 0
    li    r7, 0
    sc    1
    mr    r4, r3
    ADDR  r3, s_set_mode_le
    bl    report
    b     leave32

check_tce:
    ENTER32
    li    r3, H_PUT_TCE
    lis   r4, LIOBN_DECLARED@h
    ori   r4, r4, LIOBN_DECLARED@l
    rldicl r4, r4, 0, 32       # lis sign-extends 0x8000: keep the low 32 bits
    li    r5, 0x2000           # ioba: the third 4K page
    li    r6, 0
    ori   r6, r6, 0x8003       # gpa 0x8000, read and write
    sc    1
    mr    r4, r3
    ADDR  r3, s_put_tce
    bl    report
    li    r3, H_GET_TCE
    lis   r4, LIOBN_DECLARED@h
    ori   r4, r4, LIOBN_DECLARED@l
    rldicl r4, r4, 0, 32
    li    r5, 0x2000
    sc    1
    std   r4, 16(r1)           # the TCE read back (24(r1) holds the saved LR)
    mr    r4, r3
    ADDR  r3, s_get_tce
    bl    report
    ld    r4, 16(r1)
    ADDR  r3, s_tce_value
    bl    report
    li    r3, H_PUT_TCE
    lis   r4, LIOBN_UNDECLARED@h
    ori   r4, r4, LIOBN_UNDECLARED@l
    li    r5, 0x2000
    li    r6, 0
    ori   r6, r6, 0x8003
    sc    1
    mr    r4, r3
    ADDR  r3, s_put_tce_other
    bl    report
    b     leave32

# The 64-bit window: TCEs go in through all three put calls, come back through H_GET_TCE, and
# the launcher's trace lists the table as KVM holds it (entries 1, 4, 5, 7; 6 stuffed to 0).
check_dma64:
    ENTER32
    li    r3, H_PUT_TCE
    LIOBN64 r4
    IOBA64 r5, 1
    TCE16M r6, 16              # entry 1 -> guest 16M
    sc    1
    mr    r4, r3
    ADDR  r3, s_put_tce64
    bl    report
    li    r3, H_GET_TCE
    LIOBN64 r4
    IOBA64 r5, 1
    sc    1
    std   r4, 16(r1)
    mr    r4, r3
    ADDR  r3, s_get_tce64
    bl    report
    ld    r4, 16(r1)
    ADDR  r3, s_tce64_1
    bl    report
    li    r7, TCE_LIST         # four TCEs, big-endian as PAPR lists them
    TCE16M r6, 32
    stdbrx r6, 0, r7
    addi  r7, r7, 8
    TCE16M r6, 48
    xori  r6, r6, 2            # read only
    stdbrx r6, 0, r7
    addi  r7, r7, 8
    TCE16M r6, 64
    stdbrx r6, 0, r7
    addi  r7, r7, 8
    TCE16M r6, 80
    stdbrx r6, 0, r7
    li    r3, H_PUT_TCE_INDIRECT
    LIOBN64 r4
    IOBA64 r5, 4               # entries 4..7
    li    r6, TCE_LIST
    li    r7, 4
    sc    1
    mr    r4, r3
    ADDR  r3, s_put_indirect
    bl    report
    li    r3, H_STUFF_TCE
    LIOBN64 r4
    IOBA64 r5, 6               # entry 6 back to 0
    li    r6, 0
    li    r7, 1
    sc    1
    mr    r4, r3
    ADDR  r3, s_stuff_tce
    bl    report
    li    r3, H_GET_TCE
    LIOBN64 r4
    IOBA64 r5, 5
    sc    1
    ADDR  r3, s_tce64_5
    bl    report
    li    r3, H_GET_TCE
    LIOBN64 r4
    IOBA64 r5, 6
    sc    1
    ADDR  r3, s_tce64_6
    bl    report
    li    r3, H_PUT_TCE
    LIOBN64 r4
    IOBA64 r5, 0
    li    r6, 1
    sldi  r6, r6, 32           # 256 pages of 16M: the first bus address past the 4G window
    add   r5, r5, r6
    TCE16M r6, 16
    sc    1
    mr    r4, r3
    ADDR  r3, s_put_tce64_end
    bl    report
    b     leave32

# Boot 1 asks RTAS for a reboot; boot 2 (the counter survived the restart) goes on to power off.
check_reboot:
    ENTER32
    li    r5, BOOTS
    ld    r6, 0(r5)
    addi  r6, r6, 1
    std   r6, 0(r5)
    mr    r4, r6
    ADDR  r3, s_boot
    bl    report
    li    r5, BOOTS
    ld    r6, 0(r5)
    cmpdi r6, 1
    beq   1f
    mr    r3, r29
    ADDR  r4, s_w_forever
    bl    contains
    cmpdi r3, 0
    beq   leave32
1:  ADDR  r3, s_system_reboot
    bl    find_prop
    cmpdi r3, 0
    beq   leave32              # no token: power off instead
    lwbrx r5, 0, r3
    li    r4, RTAS_ARGS
    stwbrx r5, 0, r4           # token
    li    r6, 0
    addi  r7, r4, 4
    stwbrx r6, 0, r7           # nargs 0
    li    r6, 1
    addi  r7, r4, 8
    stwbrx r6, 0, r7           # nret 1
    li    r3, 0
    ori   r3, r3, H_RTAS
    sc    1
    ADDR  r3, s_reboot_returned
    bl    puts
    b     leave32

check_smp:
    ENTER32
    lis   r5, 0x100            # about 16M polls, then give up
    mtctr r5
1:  lwz   r6, MAILBOX(0)
    cmpwi r6, 1
    beq   2f
    bdnz  1b
    ADDR  r3, s_smp_missing
    bl    puts
    b     leave32
2:  ADDR  r3, s_smp_ok
    bl    puts
    b     leave32

leave32:
    addi  r1, r1, 32
    ld    r0, -8(r1)
    mtlr  r0
    blr

# RTAS power-off(0, 0): token from /rtas "power-off"; the launcher ends the run.
power_off:
    ADDR  r3, s_power_off
    bl    find_prop
    cmpdi r3, 0
    beq   1f
    lwbrx r5, 0, r3            # the token, big-endian in the tree
    li    r4, RTAS_ARGS
    stwbrx r5, 0, r4           # token
    li    r6, 2
    addi  r7, r4, 4
    stwbrx r6, 0, r7           # nargs
    li    r6, 1
    addi  r7, r4, 8
    stwbrx r6, 0, r7           # nret
    li    r6, 0
    std   r6, 12(r4)           # args 0, 0
    li    r3, 0
    ori   r3, r3, H_RTAS       # 0xF000 does not fit li's signed 16 bits
    sc    1
    ADDR  r3, s_still_here     # power-off returned: the launcher refused it
    bl    puts
    b     .
1:  ADDR  r3, s_no_token
    bl    puts
    b     .

# vCPU n > 0: report in, then wait to be stopped.
secondary:
    mr    r29, r3
    BASE
    lis   r1, STACK@h
    sldi  r4, r29, 12
    add   r1, r1, r4
    ADDR  r3, s_secondary
    bl    puts
    li    r4, 1
    stw   r4, MAILBOX(0)
    b     .

# --- helpers ---------------------------------------------------------------------------

# report(r3 = label, r4 = value): "label0x<16 hex digits>\n"
report:
    mflr  r0
    std   r0, -8(r1)
    stdu  r1, -48(r1)
    std   r4, 32(r1)
    bl    puts
    ld    r3, 32(r1)
    bl    puthex
    ADDR  r3, s_newline
    bl    puts
    addi  r1, r1, 48
    ld    r0, -8(r1)
    mtlr  r0
    blr

# putn(r3 = address, r4 = length <= 16): one H_PUT_TERM_CHAR; chars packed big-endian in r6, r7.
putn:
    mr    r5, r4
    ldbrx r6, 0, r3
    addi  r7, r3, 8
    ldbrx r7, 0, r7
    li    r4, 0                # terminal 0: the default vty
    li    r3, H_PUT_TERM_CHAR
    sc    1
    blr

# puts(r3 = NUL-terminated string), 16 bytes per hcall.
puts:
    mflr  r0
    std   r0, -8(r1)
    stdu  r1, -48(r1)
    std   r28, 32(r1)
    mr    r28, r3
1:  li    r4, 0
2:  lbzx  r5, r28, r4
    cmpdi r5, 0
    beq   3f
    addi  r4, r4, 1
    cmpdi r4, 16
    blt   2b
3:  cmpdi r4, 0
    beq   4f
    mr    r3, r28
    add   r28, r28, r4
    bl    putn
    b     1b
4:  ld    r28, 32(r1)
    addi  r1, r1, 48
    ld    r0, -8(r1)
    mtlr  r0
    blr

# puthex(r3 = value): "0x" and 16 hex digits.
puthex:
    mflr  r0
    std   r0, -8(r1)
    stdu  r1, -64(r1)
    std   r28, 40(r1)
    mr    r28, r3
    ADDR  r3, s_0x
    bl    puts
    li    r5, 16
    mtctr r5
    addi  r6, r1, 16           # 16 digits at r1 + 16
1:  rldicl r28, r28, 4, 0      # the next nibble, from the top
    andi. r7, r28, 0xf
    cmpdi r7, 10
    blt   2f
    addi  r7, r7, 'a' - '0' - 10
2:  addi  r7, r7, '0'
    stb   r7, 0(r6)
    addi  r6, r6, 1
    bdnz  1b
    addi  r3, r1, 16
    li    r4, 16
    bl    putn
    ld    r28, 40(r1)
    addi  r1, r1, 64
    ld    r0, -8(r1)
    mtlr  r0
    blr

# contains(r3 = haystack, r4 = needle) -> r3 = 1 if the needle occurs in the haystack, else 0.
contains:
1:  li    r5, 0
2:  lbzx  r6, r4, r5
    cmpdi r6, 0
    beq   4f                   # the whole needle matched
    lbzx  r7, r3, r5
    cmpd  r6, r7
    bne   3f
    addi  r5, r5, 1
    b     2b
3:  lbz   r7, 0(r3)
    cmpdi r7, 0
    beq   5f                   # end of the haystack
    addi  r3, r3, 1
    b     1b
4:  li    r3, 1
    blr
5:  li    r3, 0
    blr

# find_prop(r3 = property name) -> r3 = its value's address (0 if absent), r4 = its length.
# Walks the flattened tree at r31: every property of every node, first match wins.
find_prop:
    li    r5, 8
    lwbrx r6, r31, r5          # off_dt_struct
    add   r8, r31, r6          # the token pointer
    li    r5, 12
    lwbrx r6, r31, r5          # off_dt_strings
    add   r9, r31, r6
1:  lwbrx r6, 0, r8
    addi  r8, r8, 4
    cmpwi r6, 1                # FDT_BEGIN_NODE
    beq   2f
    cmpwi r6, 3                # FDT_PROP
    beq   3f
    cmpwi r6, 2                # FDT_END_NODE
    beq   1b
    cmpwi r6, 4                # FDT_NOP
    beq   1b
    li    r3, 0                # FDT_END, or a tree this walker does not understand
    li    r4, 0
    blr
2:  lbz   r6, 0(r8)            # skip the node's name and its padding
    addi  r8, r8, 1
    cmpwi r6, 0
    bne   2b
    addi  r8, r8, 3
    rldicr r8, r8, 0, 61
    b     1b
3:  lwbrx r10, 0, r8           # value length
    addi  r6, r8, 4
    lwbrx r11, 0, r6           # name offset
    addi  r12, r8, 8           # value
    add   r11, r9, r11
    mr    r5, r3
4:  lbz   r6, 0(r11)
    lbz   r7, 0(r5)
    cmpw  r6, r7
    bne   5f
    cmpwi r6, 0
    beq   6f
    addi  r11, r11, 1
    addi  r5, r5, 1
    b     4b
5:  add   r8, r12, r10         # next token, after the padded value
    addi  r8, r8, 3
    rldicr r8, r8, 0, 61
    b     1b
6:  mr    r3, r12
    mr    r4, r10
    blr

s_hello:        .asciz "hello from hvconf ppc64le guest\n"
s_bootargs:     .asciz "bootargs"
s_power_off:    .asciz "power-off"
s_empty:        .asciz ""
s_w_hcalls:     .asciz "hcalls"
s_w_tce:        .asciz "tce"
s_w_smp:        .asciz "smp"
s_w_le:         .asciz "le"
s_w_dma64:      .asciz "dma64"
s_w_reboot:     .asciz "reboot"
s_w_forever:    .asciz "forever"
s_set_mode:     .asciz "H_SET_MODE(CIABR) = "
s_set_mode_le:  .asciz "H_SET_MODE(LE) = "
s_put_tce:      .asciz "H_PUT_TCE(0x80000000) = "
s_get_tce:      .asciz "H_GET_TCE(0x80000000) = "
s_tce_value:    .asciz "TCE read back = "
s_put_tce_other: .asciz "H_PUT_TCE(0x12340000) = "
s_put_tce64:    .asciz "H_PUT_TCE(64-bit window) = "
s_get_tce64:    .asciz "H_GET_TCE(64-bit window) = "
s_tce64_1:      .asciz "TCE64 entry 1 = "
s_put_indirect: .asciz "H_PUT_TCE_INDIRECT = "
s_stuff_tce:    .asciz "H_STUFF_TCE = "
s_tce64_5:      .asciz "TCE64 entry 5 = "
s_tce64_6:      .asciz "TCE64 entry 6 = "
s_put_tce64_end: .asciz "H_PUT_TCE(past the window) = "
s_boot:         .asciz "boot = "
s_system_reboot: .asciz "system-reboot"
s_reboot_returned: .asciz "RTAS system-reboot returned\n"
s_smp_ok:       .asciz "vcpu 1 reported in\n"
s_smp_missing:  .asciz "vcpu 1 never ran\n"
s_secondary:    .asciz "secondary up\n"
s_still_here:   .asciz "RTAS power-off returned\n"
s_no_token:     .asciz "no power-off token in /rtas\n"
s_0x:           .asciz "0x"
s_newline:      .asciz "\n"
    .balign 8
    .space 16                  # putn reads 16 bytes: stay inside the image
