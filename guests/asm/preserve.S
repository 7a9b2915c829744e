// preserve_exit(variant: x0, init: x1, expect: x2, got: x3) -> mismatch mask (x0)
//
// For the `preserve` scenario. Sets SP_EL0 = init[31], jumps to variant number
// `variant`, which loads x0..x30 from init[0..31] and executes exactly one
// exit-causing instruction. Then every register is stored to the stack (through SP,
// the only register not filled), SP_EL0 and SP are recorded, and each is compared
// against expect[0..32] (SP against its value before the fill). The values found go
// to got[0..31] = x0..x30, got[31] = SP_EL0, got[32] = SP after, got[33] = SP before.
// Returns bit k set for a differing xk, bit 31 for SP_EL0, bit 32 for SP.
//
// Variants, 128 bytes apart from `preserve_variants`:
//   0          `hvc #0`              (x0 = the NULL function ID from init[0])
//   1 + rt     `ldr x<rt>, [x<base>]`  MMIO read of a scratch word
//   32 + rt    `str x<rt>, [x<base>]`  MMIO write of a scratch word
//   63 + rt    `mrs x<rt>, ID_AA64PFR0_EL1` (trapped by HCR_EL2.TID3)
//   94 + rt    `ldr w<rt>, [x<base>]`  read of the PL011 FR
// with rt = 0..30 and base = (rt + 16) % 31 (never equal to rt).

    .pushsection .text.preserve, "ax"
    func    preserve_exit
    // Frame (400 bytes): 0 x29,x30 | 16 x18,x19 | 32 x20,x21 | 48 x22,x23 |
    // 64 x24,x25 | 80 x26,x27 | 96 x28,expect | 112 got,SP before |
    // 128 x0..x30 (31 slots), SP_EL0, SP after | 392 pad
    frame18_push 400, x2
    mov     x9, sp
    stp     x3, x9, [sp, #112]

    ldr     x9, [x1, #248]
    msr     sp_el0, x9
    adr     x9, preserve_variants
    add     x9, x9, x0, lsl #7
    mov     x30, x1
    br      x9

preserve_store:
    store_x0_x30 sp, 128
    mrs     x0, sp_el0
    str     x0, [sp, #376]
    mov     x0, sp
    str     x0, [sp, #384]

    // Compare x0..x30 and SP_EL0 with expect[0..32], copying them to got.
    ldr     x2, [sp, #104]
    ldp     x3, x4, [sp, #112]
    add     x5, sp, #128
    mov     x0, #0
    mov     x6, #0
1:  ldr     x7, [x5, x6, lsl #3]
    str     x7, [x3, x6, lsl #3]
    ldr     x8, [x2, x6, lsl #3]
    cmp     x7, x8
    b.eq    2f
    mov     x9, #1
    lsl     x9, x9, x6
    orr     x0, x0, x9
2:  add     x6, x6, #1
    cmp     x6, #32
    b.lo    1b
    // SP after the exit against SP before it.
    ldr     x7, [sp, #384]
    str     x7, [x3, #256]
    str     x4, [x3, #264]
    cmp     x7, x4
    b.eq    3f
    orr     x0, x0, #0x100000000
3:  frame18_pop 400
    ret
    .size preserve_exit, . - preserve_exit

// One variant; `.org` fails to assemble if the previous one exceeded 128 bytes.
    .macro pv_variant insn:vararg
    .org    preserve_variants + pv_index * 128
    fill_x0_x30
    \insn
    b       preserve_store
    .set    pv_index, pv_index + 1
    .endm

    .balign 128
    .set    pv_index, 0
preserve_variants:
    pv_variant hvc #0

    // MMIO read
    pv_variant ldr x0, [x16]
    pv_variant ldr x1, [x17]
    pv_variant ldr x2, [x18]
    pv_variant ldr x3, [x19]
    pv_variant ldr x4, [x20]
    pv_variant ldr x5, [x21]
    pv_variant ldr x6, [x22]
    pv_variant ldr x7, [x23]
    pv_variant ldr x8, [x24]
    pv_variant ldr x9, [x25]
    pv_variant ldr x10, [x26]
    pv_variant ldr x11, [x27]
    pv_variant ldr x12, [x28]
    pv_variant ldr x13, [x29]
    pv_variant ldr x14, [x30]
    pv_variant ldr x15, [x0]
    pv_variant ldr x16, [x1]
    pv_variant ldr x17, [x2]
    pv_variant ldr x18, [x3]
    pv_variant ldr x19, [x4]
    pv_variant ldr x20, [x5]
    pv_variant ldr x21, [x6]
    pv_variant ldr x22, [x7]
    pv_variant ldr x23, [x8]
    pv_variant ldr x24, [x9]
    pv_variant ldr x25, [x10]
    pv_variant ldr x26, [x11]
    pv_variant ldr x27, [x12]
    pv_variant ldr x28, [x13]
    pv_variant ldr x29, [x14]
    pv_variant ldr x30, [x15]
    // MMIO write
    pv_variant str x0, [x16]
    pv_variant str x1, [x17]
    pv_variant str x2, [x18]
    pv_variant str x3, [x19]
    pv_variant str x4, [x20]
    pv_variant str x5, [x21]
    pv_variant str x6, [x22]
    pv_variant str x7, [x23]
    pv_variant str x8, [x24]
    pv_variant str x9, [x25]
    pv_variant str x10, [x26]
    pv_variant str x11, [x27]
    pv_variant str x12, [x28]
    pv_variant str x13, [x29]
    pv_variant str x14, [x30]
    pv_variant str x15, [x0]
    pv_variant str x16, [x1]
    pv_variant str x17, [x2]
    pv_variant str x18, [x3]
    pv_variant str x19, [x4]
    pv_variant str x20, [x5]
    pv_variant str x21, [x6]
    pv_variant str x22, [x7]
    pv_variant str x23, [x8]
    pv_variant str x24, [x9]
    pv_variant str x25, [x10]
    pv_variant str x26, [x11]
    pv_variant str x27, [x12]
    pv_variant str x28, [x13]
    pv_variant str x29, [x14]
    pv_variant str x30, [x15]
    // trapped ID register read
    pv_variant mrs x0, S3_0_C0_C4_0
    pv_variant mrs x1, S3_0_C0_C4_0
    pv_variant mrs x2, S3_0_C0_C4_0
    pv_variant mrs x3, S3_0_C0_C4_0
    pv_variant mrs x4, S3_0_C0_C4_0
    pv_variant mrs x5, S3_0_C0_C4_0
    pv_variant mrs x6, S3_0_C0_C4_0
    pv_variant mrs x7, S3_0_C0_C4_0
    pv_variant mrs x8, S3_0_C0_C4_0
    pv_variant mrs x9, S3_0_C0_C4_0
    pv_variant mrs x10, S3_0_C0_C4_0
    pv_variant mrs x11, S3_0_C0_C4_0
    pv_variant mrs x12, S3_0_C0_C4_0
    pv_variant mrs x13, S3_0_C0_C4_0
    pv_variant mrs x14, S3_0_C0_C4_0
    pv_variant mrs x15, S3_0_C0_C4_0
    pv_variant mrs x16, S3_0_C0_C4_0
    pv_variant mrs x17, S3_0_C0_C4_0
    pv_variant mrs x18, S3_0_C0_C4_0
    pv_variant mrs x19, S3_0_C0_C4_0
    pv_variant mrs x20, S3_0_C0_C4_0
    pv_variant mrs x21, S3_0_C0_C4_0
    pv_variant mrs x22, S3_0_C0_C4_0
    pv_variant mrs x23, S3_0_C0_C4_0
    pv_variant mrs x24, S3_0_C0_C4_0
    pv_variant mrs x25, S3_0_C0_C4_0
    pv_variant mrs x26, S3_0_C0_C4_0
    pv_variant mrs x27, S3_0_C0_C4_0
    pv_variant mrs x28, S3_0_C0_C4_0
    pv_variant mrs x29, S3_0_C0_C4_0
    pv_variant mrs x30, S3_0_C0_C4_0
    // PL011 FR read
    pv_variant ldr w0, [x16]
    pv_variant ldr w1, [x17]
    pv_variant ldr w2, [x18]
    pv_variant ldr w3, [x19]
    pv_variant ldr w4, [x20]
    pv_variant ldr w5, [x21]
    pv_variant ldr w6, [x22]
    pv_variant ldr w7, [x23]
    pv_variant ldr w8, [x24]
    pv_variant ldr w9, [x25]
    pv_variant ldr w10, [x26]
    pv_variant ldr w11, [x27]
    pv_variant ldr w12, [x28]
    pv_variant ldr w13, [x29]
    pv_variant ldr w14, [x30]
    pv_variant ldr w15, [x0]
    pv_variant ldr w16, [x1]
    pv_variant ldr w17, [x2]
    pv_variant ldr w18, [x3]
    pv_variant ldr w19, [x4]
    pv_variant ldr w20, [x5]
    pv_variant ldr w21, [x6]
    pv_variant ldr w22, [x7]
    pv_variant ldr w23, [x8]
    pv_variant ldr w24, [x9]
    pv_variant ldr w25, [x10]
    pv_variant ldr w26, [x11]
    pv_variant ldr w27, [x12]
    pv_variant ldr w28, [x13]
    pv_variant ldr w29, [x14]
    pv_variant ldr w30, [x15]

    .org    preserve_variants + 125 * 128
    .popsection

    .purgem pv_variant
