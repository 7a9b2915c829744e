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
    func    mmio_ldr_xzr
    // Frame (384 bytes): 0 x29,x30 | 16 x18,x19 | 32 x20,x21 | 48 x22,x23 |
    // 64 x24,x25 | 80 x26,x27 | 96 x28,out | 112 SP before | 128 x0..x30 | 376 SP after
    frame18_push 384, x1
    mov     x9, sp
    str     x9, [sp, #112]

    .irp k, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
    mmio_movq x\k, (0x5A5A000000000000 ^ (\k * 0x0101010101010101))
    .endr

    ldr     xzr, [x0]

    store_x0_x30 sp, 128
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

    frame18_pop 384
    ret
    .size mmio_ldr_xzr, . - mmio_ldr_xzr
    .popsection

    .purgem mmio_movq
