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

    .pushsection .bss.slot_ctx, "aw", %nobits
    .balign 16
slot_ctx:
    .space 128
    .popsection

    .pushsection .text.slot_exec, "ax"
    .global slot_exec
    .type slot_exec, %function
    .balign 4
slot_exec:
    adrp    x9, slot_ctx
    add     x9, x9, :lo12:slot_ctx
    mov     x10, sp
    stp     x10, x0, [x9, #0]
    stp     x18, x19, [x9, #16]
    stp     x20, x21, [x9, #32]
    stp     x22, x23, [x9, #48]
    stp     x24, x25, [x9, #64]
    stp     x26, x27, [x9, #80]
    stp     x28, x29, [x9, #96]
    str     x30, [x9, #112]
    mrs     x10, vbar_el1
    str     x10, [x9, #120]
    adrp    x10, slot_vectors
    add     x10, x10, :lo12:slot_vectors
    msr     vbar_el1, x10
    // ERET into the slot: PSTATE exactly as asked (ERET synchronises the context,
    // so the new VBAR_EL1 is in effect for the words).
    adrp    x10, slot_code
    add     x10, x10, :lo12:slot_code
    msr     elr_el1, x10
    ldr     x10, [x0, #256]
    msr     spsr_el1, x10
    // SP for words run at EL1h (SP_EL1) and at EL1t (SP_EL0).
    ldr     x10, [x0, #248]
    mov     sp, x10
    msr     sp_el0, x10
    mov     x30, x0
    ldp     x0, x1,   [x30, #0]
    ldp     x2, x3,   [x30, #16]
    ldp     x4, x5,   [x30, #32]
    ldp     x6, x7,   [x30, #48]
    ldp     x8, x9,   [x30, #64]
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
    ldr     x30,      [x30, #240]
    eret
    .size slot_exec, . - slot_exec

// The words branch here (src/slot.rs writes `b slot_after` after them). TPIDR_EL1
// is the one scratch register: the words may have changed it, it is reported.
    .global slot_after
    .type slot_after, %function
slot_after:
    msr     tpidr_el1, x0
    adrp    x0, slot_ctx
    add     x0, x0, :lo12:slot_ctx
    ldr     x0, [x0, #8]
    str     x1,       [x0, #8]
    stp     x2, x3,   [x0, #16]
    stp     x4, x5,   [x0, #32]
    stp     x6, x7,   [x0, #48]
    stp     x8, x9,   [x0, #64]
    stp     x10, x11, [x0, #80]
    stp     x12, x13, [x0, #96]
    stp     x14, x15, [x0, #112]
    stp     x16, x17, [x0, #128]
    stp     x18, x19, [x0, #144]
    stp     x20, x21, [x0, #160]
    stp     x22, x23, [x0, #176]
    stp     x24, x25, [x0, #192]
    stp     x26, x27, [x0, #208]
    stp     x28, x29, [x0, #224]
    str     x30,      [x0, #240]
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
    adrp    x9, slot_ctx
    add     x9, x9, :lo12:slot_ctx
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
    adrp    x9, slot_ctx
    add     x9, x9, :lo12:slot_ctx
    ldr     x10, [x9, #8]
    str     x1, [x10, #264]
    adr     x10, 1f
    msr     elr_el1, x10
    mov     x10, #0x3c5
    msr     spsr_el1, x10
    eret
1:  ldr     x10, [x9, #120]
    msr     vbar_el1, x10
    isb
    ldr     x10, [x9, #0]
    mov     sp, x10
    ldr     x0, [x9, #8]
    ldr     x0, [x0, #264]
    ldp     x18, x19, [x9, #16]
    ldp     x20, x21, [x9, #32]
    ldp     x22, x23, [x9, #48]
    ldp     x24, x25, [x9, #64]
    ldp     x26, x27, [x9, #80]
    ldp     x28, x29, [x9, #96]
    ldr     x30, [x9, #112]
    ret
    .popsection

// The vectors in force while the words run: every entry records and leaves.
    .pushsection .text.slot_vectors, "ax"
    .balign 0x800
    .global slot_vectors
slot_vectors:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    .balign 0x80
    mov     x0, #\n
    b       slot_trap
    .endr
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
