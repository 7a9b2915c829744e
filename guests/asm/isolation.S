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
    func    isolation_hold
    frame_push
    // The caller's SP goes to memory: no register is left to hold it.
    adrp    x9, isolation_saved_sp
    mov     x10, sp
    str     x10, [x9, :lo12:isolation_saved_sp]

    mov     sp, x1
    mov     x30, x0
    // macros.S: 15 LDPs and an LDR, nothing else; the same for the stores below.
    fill_x0_x30

    // Every register holds its pattern now; VM switches happen during this spin.
1:  sub     x29, x29, #1
    tst     x29, #0xffffffff
    b.ne    1b

    store_x0_x30 sp, 0
    mov     x0, sp
    str     x0, [sp, #248]

    ldr_l   x0, isolation_saved_sp, x0
    mov     sp, x0
    frame_pop
    ret
    .size isolation_hold, . - isolation_hold

// isolation_fp_load(state: x0 = *const FpState): V0..V31 = state[0..512] (16-byte
// aligned), FPCR = state[512], FPSR = state[520].
    func    isolation_fp_load
    reg_seq ldr, ldp, x0, 0, 32, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10, q11, q12, q13, q14, q15, q16, q17, q18, q19, q20, q21, q22, q23, q24, q25, q26, q27, q28, q29, q30, q31
    add     x3, x0, #512
    ldp     x1, x2, [x3]
    msr     fpcr, x1
    msr     fpsr, x2
    ret
    .size isolation_fp_load, . - isolation_fp_load

// isolation_fp_store(state: x0 = *mut FpState): the inverse of isolation_fp_load;
// changes only x1..x3 (and memory at state).
    func    isolation_fp_store
    reg_seq str, stp, x0, 0, 32, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10, q11, q12, q13, q14, q15, q16, q17, q18, q19, q20, q21, q22, q23, q24, q25, q26, q27, q28, q29, q30, q31
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
    vector_table isolation_vectors_a, x0, 1, isolation_vector_common
    vector_table isolation_vectors_b, x0, 1, isolation_vector_common

isolation_vector_common:
    adr_l   x1, __stack_top
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
