// Code-slot harness (see src/slot.rs): runs instruction words at EL1 from a RAM
// code slot with every GPR, SP and PSTATE set beforehand, and catches whatever the
// words raise at EL1 through its own vectors.
//
// u64 slot_exec(SlotState *s)   (C ABI; returns s->result)
//
// SlotState layout (repr(C), offsets used below):
//   0   regs[31]  x0..x30: in; out after a fall-through
//   248 sp        in; out after a fall-through
//   256 pstate    in: SPSR for the ERET into the slot (M: EL1h or EL1t; SP_EL1 and
//                 SP_EL0 both start as `sp`)
//   264 result    out: 0 = fell through the words, 1 + n = exception at vector n
//   272 esr, 280 elr, 288 far, 296 spsr   out: EL1 exception registers (result != 0)
//   304 tpidr     out: TPIDR_EL1 as the words left it (after a fall-through)
//
// slot_ctx (in .bss): 0 caller SP, 8 state pointer, 16.. x18..x30 (13 slots),
// 120 caller VBAR_EL1.
//
// Nothing here may depend on a register or on SP once the words have run: the way
// back to the caller starts from PC-relative addresses only.

    ctx_block slot_ctx, .bss.slot_ctx

    .pushsection .text.slot_exec, "ax"
    func    slot_exec
    ctx_save slot_ctx, slot_vectors
    // ERET into the slot: PSTATE exactly as asked (ERET synchronises the context,
    // so the new VBAR_EL1 is in effect for the words).
    adr_l   x10, slot_code
    msr     elr_el1, x10
    ldr     x10, [x0, #256]
    msr     spsr_el1, x10
    // SP for words run at EL1h (SP_EL1) and at EL1t (SP_EL0).
    ldr     x10, [x0, #248]
    mov     sp, x10
    msr     sp_el0, x10
    mov     x30, x0
    fill_x0_x30
    eret
    .size slot_exec, . - slot_exec

// The words branch here (src/slot.rs writes `b slot_after` after them). TPIDR_EL1
// is the one scratch register: the words may have changed it, it is reported.
    .global slot_after
    .type slot_after, %function
slot_after:
    msr     tpidr_el1, x0
    adr_l   x0, slot_ctx
    ldr     x0, [x0, #8]
    str     x1, [x0, #8]
    stp_seq x0, 16, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15, x16, x17, x18, x19, x20, x21, x22, x23, x24, x25, x26, x27, x28, x29, x30
    mrs     x1, tpidr_el1
    str     x1, [x0, #0]
    str     x1, [x0, #304]
    mov     x1, sp
    str     x1, [x0, #248]
    mov     x1, #0
    b       slot_leave
    .size slot_after, . - slot_after

// x0 = vector number (0..15). Records the EL1 exception registers.
slot_trap:
    adr_l   x9, slot_ctx
    ldr     x9, [x9, #8]
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    stp     x1, x2, [x9, #272]
    mrs     x1, far_el1
    mrs     x2, spsr_el1
    stp     x1, x2, [x9, #288]
    add     x1, x0, #1
    b       slot_leave

// x1 = result. Back to the caller through an ERET, so its PSTATE is clean again
// (EL1h, DAIF masked, NZCV/PAN/SSBS/DIT/TCO/UAO clear), with its SP, registers and
// vectors.
slot_leave:
    adr_l   x9, slot_ctx
    ldr     x10, [x9, #8]
    str     x1, [x10, #264]
    ctx_leave 264
    .popsection

// The vectors in force while the words run: every entry records and leaves.
    .pushsection .text.slot_vectors, "ax"
    vector_table slot_vectors, x0, 1, slot_trap
    .popsection

// The code slot: the middle of a page of its own, everything else UDF #0 (zero),
// so a PC that lands anywhere but on the words or the branch back faults. Alone on
// its page, rewriting it invalidates no other translated code in QEMU.
    .pushsection .text.slot_code, "ax"
    .balign 4096
    .fill   512, 4, 0
    .global slot_code
slot_code:
    .fill   512, 4, 0
    .popsection
