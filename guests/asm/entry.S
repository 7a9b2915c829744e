// Entry point and EL1 exception vectors shared by every test guest.
//
// Entry state (docs/test-protocol.md): EL1h, MMU off, DAIF masked, x0 = DTB IPA
// (0 for test guests), x1 = iters, all other GPRs 0.

    .section .text.boot, "ax"
    .global _start
    .type _start, %function
_start:
    // Fold x3..x30 into x3: the runtime checks "all other GPRs are 0" with it and
    // x2 (kept apart: a guest may take an argument there, e.g. the hostile seed).
    .irp n, 4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
    orr     x3, x3, x\n
    .endr

    adr_l   x4, __stack_top
    mov     sp, x4

    // Zero .bss (16-byte aligned bounds, plain stores: the MMU is off, so no DC ZVA).
    adr_l   x4, __bss_start
    adr_l   x5, __bss_end
1:  cmp     x4, x5
    b.hs    2f
    str     xzr, [x4], #8
    b       1b

2:  adr_l   x4, guest_vectors
    msr     vbar_el1, x4
    isb

    mov     x29, xzr
    mov     x30, xzr
    // guest_rust_start(x0 = entry x0, x1 = entry x1, x2 = entry x2,
    //                  x3 = OR of entry x3..x30)
    bl      guest_rust_start
3:  wfe
    b       3b
    .size _start, . - _start

// Any exception taken to EL1 is unexpected: report kind, ESR, ELR and FAR and exit.
    .section .text.vectors, "ax"
    vector_table guest_vectors, x0, 1, guest_vector_common

    .global guest_vector_common
guest_vector_common:
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    bl      guest_exception
4:  wfe
    b       4b
