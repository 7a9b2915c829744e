// Assembly half of the `isolation` guest (src/bin/isolation.rs): the parts that must
// not let compiled code touch the registers under test.
//
// The target is soft-float, so compiled code never uses FP/SIMD; the V registers,
// FPCR and FPSR keep what isolation_fp_load put there until isolation_fp_store reads
// them, and only these two routines touch them.

    .arch_extension fp
    .arch_extension simd

// isolation_hold(init: x0 = *const [u64; 31], snap: x1 = *mut [u64; 32])
//
// Loads x0..x30 from init[0..31] and sets SP (SP_EL1) = snap, the address of the
// snapshot area (16-byte aligned), so that every general-purpose register and SP
// holds a pattern. Then spins with x29 as the counter: its low 32 bits count down to
// 0, its high 32 bits (a role-specific pattern) are left alone. Then stores x0..x30
// to snap[0..31] and SP to snap[31] through SP, without changing any register first,
// and returns to the caller with the caller's SP and callee-saved registers.
// Between the fill and the stores, no register is written except x29's low half and
// NZCV; nothing here touches memory in between.
    .pushsection .text.isolation, "ax"
    .global isolation_hold
    .type isolation_hold, %function
    .balign 4
isolation_hold:
    stp     x29, x30, [sp, #-96]!
    stp     x19, x20, [sp, #16]
    stp     x21, x22, [sp, #32]
    stp     x23, x24, [sp, #48]
    stp     x25, x26, [sp, #64]
    stp     x27, x28, [sp, #80]
    // The caller's SP goes to memory: no register is left to hold it.
    adrp    x9, isolation_saved_sp
    mov     x10, sp
    str     x10, [x9, :lo12:isolation_saved_sp]

    mov     sp, x1
    mov     x30, x0
    ldp     x0, x1, [x30, #0]
    ldp     x2, x3, [x30, #16]
    ldp     x4, x5, [x30, #32]
    ldp     x6, x7, [x30, #48]
    ldp     x8, x9, [x30, #64]
    ldp     x10, x11, [x30, #80]
    ldp     x12, x13, [x30, #96]
    ldp     x14, x15, [x30, #112]
    ldp     x16, x17, [x30, #128]
    ldp     x18, x19, [x30, #144]
    ldp     x20, x21, [x30, #160]
    ldp     x22, x23, [x30, #176]
    ldp     x24, x25, [x30, #192]
    ldp     x26, x27, [x30, #208]
    ldp     x28, x29, [x30, #224]
    ldr     x30, [x30, #240]

    // Every register holds its pattern now; VM switches happen during this spin.
1:  sub     x29, x29, #1
    tst     x29, #0xffffffff
    b.ne    1b

    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    str     x30, [sp, #240]
    mov     x0, sp
    str     x0, [sp, #248]

    adrp    x0, isolation_saved_sp
    ldr     x0, [x0, :lo12:isolation_saved_sp]
    mov     sp, x0
    ldp     x19, x20, [sp, #16]
    ldp     x21, x22, [sp, #32]
    ldp     x23, x24, [sp, #48]
    ldp     x25, x26, [sp, #64]
    ldp     x27, x28, [sp, #80]
    ldp     x29, x30, [sp], #96
    ret
    .size isolation_hold, . - isolation_hold

// isolation_fp_load(state: x0 = *const FpState): V0..V31 = state[0..512] (16-byte
// aligned), FPCR = state[512], FPSR = state[520].
    .global isolation_fp_load
    .type isolation_fp_load, %function
    .balign 4
isolation_fp_load:
    ldp     q0, q1, [x0, #0]
    ldp     q2, q3, [x0, #32]
    ldp     q4, q5, [x0, #64]
    ldp     q6, q7, [x0, #96]
    ldp     q8, q9, [x0, #128]
    ldp     q10, q11, [x0, #160]
    ldp     q12, q13, [x0, #192]
    ldp     q14, q15, [x0, #224]
    ldp     q16, q17, [x0, #256]
    ldp     q18, q19, [x0, #288]
    ldp     q20, q21, [x0, #320]
    ldp     q22, q23, [x0, #352]
    ldp     q24, q25, [x0, #384]
    ldp     q26, q27, [x0, #416]
    ldp     q28, q29, [x0, #448]
    ldp     q30, q31, [x0, #480]
    add     x3, x0, #512
    ldp     x1, x2, [x3]
    msr     fpcr, x1
    msr     fpsr, x2
    ret
    .size isolation_fp_load, . - isolation_fp_load

// isolation_fp_store(state: x0 = *mut FpState): the inverse of isolation_fp_load;
// changes only x1..x3 (and memory at state).
    .global isolation_fp_store
    .type isolation_fp_store, %function
    .balign 4
isolation_fp_store:
    stp     q0, q1, [x0, #0]
    stp     q2, q3, [x0, #32]
    stp     q4, q5, [x0, #64]
    stp     q6, q7, [x0, #96]
    stp     q8, q9, [x0, #128]
    stp     q10, q11, [x0, #160]
    stp     q12, q13, [x0, #192]
    stp     q14, q15, [x0, #224]
    stp     q16, q17, [x0, #256]
    stp     q18, q19, [x0, #288]
    stp     q20, q21, [x0, #320]
    stp     q22, q23, [x0, #352]
    stp     q24, q25, [x0, #384]
    stp     q26, q27, [x0, #416]
    stp     q28, q29, [x0, #448]
    stp     q30, q31, [x0, #480]
    mrs     x1, fpcr
    mrs     x2, fpsr
    add     x3, x0, #512
    stp     x1, x2, [x3]
    ret
    .size isolation_fp_store, . - isolation_fp_store
    .popsection

// Two EL1 vector tables, one per role, so that VBAR_EL1 can hold a role-specific
// pattern and still catch anything unexpected. Both report like asm/entry.S does
// (guest_exception in rt.rs, which EXITs), after moving SP back to the guest's stack
// (an exception inside isolation_hold would find SP at the snapshot area).
    .pushsection .text.isolation_vectors, "ax"
    .macro iso_vectors name
    .balign 0x800
    .global \name
\name:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    .balign 0x80
    mov     x0, #\n
    b       isolation_vector_common
    .endr
    .endm

    iso_vectors isolation_vectors_a
    iso_vectors isolation_vectors_b
    .purgem iso_vectors

isolation_vector_common:
    adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    bl      guest_exception
2:  wfe
    b       2b
    .popsection

    .pushsection .bss.isolation, "aw", %nobits
    .balign 8
isolation_saved_sp:
    .quad   0
    .popsection
