// Software-step harness of the `debug` guest (src/bin/debug.rs): runs a code
// sequence at EL1 one instruction at a time and records every exception it takes.
//
// u64 debug_step_run(StepRun *r)   (C ABI; returns r->count)
//
// StepRun layout (repr(C), offsets used below):
//   0  start   where the stepped code starts (ERET target)
//   8  end     stop when an exception's ELR_EL1 is this address
//   16 spsr    PSTATE for the ERET (EL1h, D clear, SS set: active-not-pending)
//   24 log     pointer to `max` entries of (ESR_EL1, ELR_EL1)
//   32 max     entries in `log`
//   40 count   out: entries written
//
// Every exception taken while the code runs is recorded. A Software Step exception
// (EC 0x33) whose ELR_EL1 is not `end` resumes the code with SPSR_EL1.SS set again,
// which steps the next instruction; anything else, `end`, or a full log returns to
// the caller. The stepped code may change x0..x17 (the caller declares them); SP
// stays the caller's (the vectors push 32 bytes below it).
//
// step_ctx (in .bss): 0 caller SP, 8 StepRun pointer, 16.. x18..x30, 120 caller
// VBAR_EL1.

    ctx_block step_ctx, .bss.debug_step_ctx

    .pushsection .text.debug_step_run, "ax"
    func    debug_step_run
    ctx_save step_ctx, step_vectors
    str     xzr, [x0, #40]
    ldr     x10, [x0, #0]
    msr     elr_el1, x10
    ldr     x10, [x0, #16]
    msr     spsr_el1, x10
    // ERET synchronises: the new VBAR_EL1 applies to the stepped code.
    eret
    .size debug_step_run, . - debug_step_run

// Entered from a vector with x0, x1 pushed at [sp] (and room for x2, x3).
step_record:
    stp     x2, x3, [sp, #16]
    adr_l   x0, step_ctx
    ldr     x1, [x0, #8]
    ldr     x2, [x1, #40]
    ldr     x3, [x1, #24]
    add     x3, x3, x2, lsl #4
    mrs     x0, esr_el1
    str     x0, [x3, #0]
    mrs     x0, elr_el1
    str     x0, [x3, #8]
    add     x2, x2, #1
    str     x2, [x1, #40]
    ldr     x3, [x1, #32]
    cmp     x2, x3
    b.hs    step_leave
    mrs     x0, esr_el1
    lsr     x0, x0, #26
    cmp     x0, #0x33
    b.ne    step_leave
    mrs     x0, elr_el1
    ldr     x3, [x1, #8]
    cmp     x0, x3
    b.eq    step_leave
    // Step the next instruction: active-not-pending again after the ERET.
    mrs     x0, spsr_el1
    orr     x0, x0, #(1 << 21)
    msr     spsr_el1, x0
    ldp     x2, x3, [sp, #16]
    ldp     x0, x1, [sp], #32
    eret

// Back to the caller through an ERET (PSTATE EL1h, DAIF masked, SS clear), with
// its SP, callee-saved registers and vectors.
step_leave:
    adr_l   x9, step_ctx
    ctx_leave 40
    .popsection

    .pushsection .text.debug_step_vectors, "ax"
    .balign 0x800
step_vectors:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    .balign 0x80
    stp     x0, x1, [sp, #-32]!
    b       step_record
    .endr
    .popsection

// The stepped sequence: one Software Step exception must follow each instruction,
// at the next one, whoever completed it (src/bin/debug.rs lists what each is).
    .pushsection .text.debug_step_code, "ax"
    .balign 4
    .global debug_step_code, debug_step_end
debug_step_code:
    mov     x9, #1                  // ordinary
    add     x9, x9, #2              // ordinary
    movz    x11, #0x0b00, lsl #16   // the test device
    ldr     w10, [x11, #0x100]      // MMIO load: the host completes it
    add     x9, x9, x10             // ordinary (uses the loaded value)
    str     w10, [x11]              // MMIO store: the host completes it
    movz    x0, #0xc600, lsl #16    // NULL hypercall ID
    hvc     #0                      // answered by the host
    mrs     x12, id_aa64pfr0_el1    // ID register: the crate's fast path
    msr     actlr_el1, xzr          // ACTLR_EL1 (TACR): the crate ignores the write
    movz    x0, #0xc600, lsl #16
    movk    x0, #4                  // YIELD (0xc600_0004)
    hvc     #0                      // the host unbinds and binds the vCPU
    wfi                             // trapped (TWI): the host unbinds and binds it
    movz    x0, #0x8400, lsl #16    // PSCI_VERSION
    smc     #0                      // answered by the crate (ELR pointed at the SMC)
    movz    x0, #0x8400, lsl #16
    hvc     #0                      // PSCI_VERSION answered by the crate
    mrs     x13, mdscr_el1          // a debug register: loaded, not trapped
    mrs     x14, cntp_ctl_el0       // the emulated EL1 physical timer
    mrs     x15, oslsr_el1          // the emulated OS lock status
    nop                             // ordinary
debug_step_end:
    udf     #0
    .popsection
