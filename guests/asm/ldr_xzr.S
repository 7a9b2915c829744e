// mmio_ldr_xzr(addr: x0, out: x1 -> [u64; 33])
//
// Fills x1..x30 with known patterns (x0 keeps the address), executes one
// `ldr xzr, [x0]` (an MMIO read whose result must be discarded), then stores
// x0..x30 to the stack and copies them to out[0..31], with SP before the fill in
// out[31] and SP after the load in out[32]. The caller compares.
// Pattern of xk: 0x5A5A_0000_0000_0000 ^ (k * 0x0101_0101_0101_0101).

    .macro mmio_movq reg, val
    movz    \reg, #((\val) & 0xffff)
    movk    \reg, #(((\val) >> 16) & 0xffff), lsl #16
    movk    \reg, #(((\val) >> 32) & 0xffff), lsl #32
    movk    \reg, #(((\val) >> 48) & 0xffff), lsl #48
    .endm

    .pushsection .text.mmio_ldr_xzr, "ax"
    .global mmio_ldr_xzr
    .type mmio_ldr_xzr, %function
    .balign 4
mmio_ldr_xzr:
    // Frame (384 bytes): 0 x29,x30 | 16 x18,x19 | 32 x20,x21 | 48 x22,x23 |
    // 64 x24,x25 | 80 x26,x27 | 96 x28,out | 112 SP before | 128 x0..x30 | 376 SP after
    stp     x29, x30, [sp, #-384]!
    stp     x18, x19, [sp, #16]
    stp     x20, x21, [sp, #32]
    stp     x22, x23, [sp, #48]
    stp     x24, x25, [sp, #64]
    stp     x26, x27, [sp, #80]
    stp     x28, x1, [sp, #96]
    mov     x9, sp
    str     x9, [sp, #112]

    .irp k, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
    mmio_movq x\k, (0x5A5A000000000000 ^ (\k * 0x0101010101010101))
    .endr

    ldr     xzr, [x0]

    stp     x0, x1, [sp, #128]
    stp     x2, x3, [sp, #144]
    stp     x4, x5, [sp, #160]
    stp     x6, x7, [sp, #176]
    stp     x8, x9, [sp, #192]
    stp     x10, x11, [sp, #208]
    stp     x12, x13, [sp, #224]
    stp     x14, x15, [sp, #240]
    stp     x16, x17, [sp, #256]
    stp     x18, x19, [sp, #272]
    stp     x20, x21, [sp, #288]
    stp     x22, x23, [sp, #304]
    stp     x24, x25, [sp, #320]
    stp     x26, x27, [sp, #336]
    stp     x28, x29, [sp, #352]
    str     x30, [sp, #368]
    mov     x9, sp
    str     x9, [sp, #376]

    ldr     x1, [sp, #104]
    add     x2, sp, #128
    mov     x3, #0
1:  ldr     x4, [x2, x3, lsl #3]
    str     x4, [x1, x3, lsl #3]
    add     x3, x3, #1
    cmp     x3, #31
    b.lo    1b
    ldr     x4, [sp, #112]
    str     x4, [x1, #248]
    ldr     x4, [sp, #376]
    str     x4, [x1, #256]

    ldp     x18, x19, [sp, #16]
    ldp     x20, x21, [sp, #32]
    ldp     x22, x23, [sp, #48]
    ldp     x24, x25, [sp, #64]
    ldp     x26, x27, [sp, #80]
    ldr     x28, [sp, #96]
    ldp     x29, x30, [sp], #384
    ret
    .size mmio_ldr_xzr, . - mmio_ldr_xzr
    .popsection

    .purgem mmio_movq
