// Register sweep (src/sweep.rs): vectors that resume after an UNDEFINED (or any other
// synchronous exception) raised by a stub in `sweep_stubs`, and record a virtual
// SError's syndrome.
//
// Contract with `sweep::call` (inline asm there): x17 = 0 before the stub runs; an
// exception taken at EL1h from inside the stub area sets x17 = ESR_EL1 and resumes at
// the next instruction (the stub's RET). x14..x16 are scratch. Anything else taken
// here is unexpected and goes to the runtime's report (guest_vector_common).

    .pushsection .bss.sweep_stubs, "aw", %nobits
    .balign 4096
    .global sweep_stubs
sweep_stubs:
    // 32768 encodings x 16 bytes: MRS x0 ; RET ; MSR x1 ; RET.
    .space 0x80000
    .popsection

    .section .text.sweep_vectors, "ax"
    .balign 0x800
    .global sweep_vectors
sweep_vectors:
    vector_stubs x0, 1, guest_vector_common, 0, 1, 2, 3
    // 0x200: synchronous, current EL with SP_ELx.
    .balign 0x80
    mrs     x16, elr_el1
    adr_l   x15, sweep_stubs
    cmp     x16, x15
    b.lo    1f
    mov     x14, #0x80000
    add     x15, x15, x14
    cmp     x16, x15
    b.hs    1f
    mrs     x17, esr_el1
    add     x16, x16, #4
    msr     elr_el1, x16
    eret
1:  mov     x0, #4
    b       guest_vector_common
    vector_stubs x0, 1, guest_vector_common, 5, 6
    // 0x380: SError, current EL with SP_ELx: the virtual SError the host made pending,
    // taken while `sweep::take_serror` has PSTATE.A clear. Its syndrome goes to x17.
    .balign 0x80
    mrs     x17, esr_el1
    eret
    vector_stubs x0, 1, guest_vector_common, 8, 9, 10, 11, 12, 13, 14, 15
