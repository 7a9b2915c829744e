// Assembler macros shared by the guests' assembly (guests/asm/*.S and the
// `global_asm!` of some guest binaries). Each user puts this file in front of its own:
// `guests::global_asm_file!("x.S")` (src/lib.rs) assembles asm/macros.S then asm/x.S,
// and `guests::asm_macros!()` is its text for a `global_asm!` written in Rust. Two such
// blocks may end up in one assembler run (one codegen unit), so the definitions are
// guarded: the second copy defines nothing.
//
// Every macro expands to a fixed sequence of instructions, written out below in the
// order they run; none uses a register or memory it does not name in its comment.
// (No braces: this file goes through global_asm!, which reads them as operands.)

    .ifndef guests_asm_macros
    .set    guests_asm_macros, 1

// \reg = the address of \sym (adrp + add :lo12:).
    .macro adr_l reg, sym
    adrp    \reg, \sym
    add     \reg, \reg, :lo12:\sym
    .endm

// \reg = the 64-bit word at \sym, through \tmp (adrp \tmp; ldr \reg).
    .macro ldr_l reg, sym, tmp
    adrp    \tmp, \sym
    ldr     \reg, [\tmp, :lo12:\sym]
    .endm

// The 64-bit word at \sym = \reg, through \tmp (adrp \tmp; str \reg).
    .macro str_l reg, sym, tmp
    adrp    \tmp, \sym
    str     \reg, [\tmp, :lo12:\sym]
    .endm

// The start of a global function \name (4-byte aligned).
    .macro func name
    .global \name
    .type   \name, %function
    .balign 4
\name:
    .endm

// Registers to or from consecutive memory: \op2 (ldp/stp) two at a time at
// [\base, #\off], [\base, #\off + \step], ... in the order given; an odd last one
// with \op1 (ldr/str). Nothing else: the base is only read, never written back.
// (One nesting level per pair: 16 at most here, within the assembler's limit of 20.)
    .macro reg_seq op1, op2, base, off, step, r1, r2, rest:vararg
    .ifb \r2
    \op1    \r1, [\base, #\off]
    .else
    \op2    \r1, \r2, [\base, #\off]
    .ifnb \rest
    reg_seq \op1, \op2, \base, \off+\step, \step, \rest
    .endif
    .endif
    .endm

// X registers (8 bytes each) from / to [\base, #\off] onwards, in the order given.
    .macro ldp_seq base, off, regs:vararg
    reg_seq ldr, ldp, \base, \off, 16, \regs
    .endm
    .macro stp_seq base, off, regs:vararg
    reg_seq str, stp, \base, \off, 16, \regs
    .endm

// x0..x30 = the 31 words at [x30] (x30 itself last, so the base survives until then):
// 15 LDPs and one LDR, nothing else.
    .macro fill_x0_x30
    ldp_seq x30, 0, x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15, x16, x17, x18, x19, x20, x21, x22, x23, x24, x25, x26, x27, x28, x29, x30
    .endm

// The 31 words at [\base, #\off] onwards = x0..x30: 15 STPs and one STR, nothing else.
    .macro store_x0_x30 base, off
    stp_seq \base, \off, x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15, x16, x17, x18, x19, x20, x21, x22, x23, x24, x25, x26, x27, x28, x29, x30
    .endm

// \tmp = each system register in turn, stored to [\base, #\off], [\base, #\off + 8], ...
    .macro mrs_seq tmp, base, off, sysreg, rest:vararg
    mrs     \tmp, \sysreg
    str     \tmp, [\base, #\off]
    .ifnb \rest
    mrs_seq \tmp, \base, \off+8, \rest
    .endif
    .endm

// The AAPCS64 callee-saved frame (96 bytes, pre-indexed): 0 x29,x30 | 16 x19,x20 |
// 32 x21,x22 | 48 x23,x24 | 64 x25,x26 | 80 x27,x28. frame_pop undoes it.
    .macro frame_push
    stp     x29, x30, [sp, #-96]!
    stp_seq sp, 16, x19, x20, x21, x22, x23, x24, x25, x26, x27, x28
    .endm
    .macro frame_pop
    ldp_seq sp, 16, x19, x20, x21, x22, x23, x24, x25, x26, x27, x28
    ldp     x29, x30, [sp], #96
    .endm

// A larger frame of \size bytes that keeps x18 too (the tests fill it): 0 x29,x30 |
// 16 x18,x19 | ... | 80 x26,x27 | 96 x28,\with (a word of the caller's choice; only
// x28 comes back). frame18_pop undoes it.
    .macro frame18_push size, with
    stp     x29, x30, [sp, #-\size]!
    stp_seq sp, 16, x18, x19, x20, x21, x22, x23, x24, x25, x26, x27, x28, \with
    .endm
    .macro frame18_pop size
    ldp_seq sp, 16, x18, x19, x20, x21, x22, x23, x24, x25, x26, x27, x28
    ldp     x29, x30, [sp], #\size
    .endm

// The storage of a ctx_save context block: 128 bytes at \name in .bss section \section.
    .macro ctx_block name, section
    .pushsection \section, "aw", %nobits
    .balign 16
\name:
    .space 128
    .popsection
    .endm

// A context block at x9 (address of \ctx, a ctx_block) for a routine that leaves
// through its own vectors: 0 caller SP, 8 x0 (the routine's argument), 16.. x18..x30 (13 slots),
// 120 caller VBAR_EL1; then VBAR_EL1 = \vectors. Uses x9 and x10.
    .macro ctx_save ctx, vectors
    adr_l   x9, \ctx
    mov     x10, sp
    stp_seq x9, 0, x10, x0, x18, x19, x20, x21, x22, x23, x24, x25, x26, x27, x28, x29, x30
    mrs     x10, vbar_el1
    str     x10, [x9, #120]
    adr_l   x10, \vectors
    msr     vbar_el1, x10
    .endm

// The way back from ctx_save's routine, x9 = its context block: an ERET to EL1h with
// DAIF masked (PSTATE clean again), then the caller's VBAR_EL1 and SP, x0 = the word
// at offset \result of the argument, x18..x30 restored, RET. Uses x9, x10 and label 1.
    .macro ctx_leave result
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
    ldr     x0, [x0, #\result]
    ldp_seq x9, 16, x18, x19, x20, x21, x22, x23, x24, x25, x26, x27, x28, x29, x30
    ret
    .endm

// For a probe that ERETs away and comes back through its vectors (frame_push done):
// the caller's SP to \saved_sp, VBAR_EL1 = \vectors. Uses x9 and x10.
    .macro probe_enter saved_sp, vectors
    mov     x10, sp
    str_l   x10, \saved_sp, x9
    adr_l   x9, \vectors
    msr     vbar_el1, x9
    .endm

// Back from the probe: SP = \saved_sp, VBAR_EL1 = guest_vectors (asm/entry.S), ISB,
// frame_pop, RET. Uses x9 and x10.
    .macro probe_leave saved_sp
    ldr_l   x10, \saved_sp, x9
    mov     sp, x10
    adr_l   x9, guest_vectors
    msr     vbar_el1, x9
    isb
    frame_pop
    ret
    .endm

// A secondary vCPU's start (PSCI CPU_ON): SP = the end of \stack (\size bytes),
// VBAR_EL1 = guest_vectors (asm/entry.S). Uses x9; no ISB (the caller ends its setup
// with one).
    .macro secondary_start stack, size
    adr_l   x9, \stack
    add     x9, x9, #\size
    mov     sp, x9
    adr_l   x9, guest_vectors
    msr     vbar_el1, x9
    .endm

// YIELD (0xC600_0004) forever: the host runs another vCPU at each. Uses x0 and local
// label 1.
    .macro yield_forever
1:  mov     x0, #0x4
    movk    x0, #0xc600, lsl #16
    hvc     #0
    b       1b
    .endm

// Vector entries (one per 0x80 slot, in the order given by \ns): `mov \reg, #(n * \mul)`
// then `b \target`.
    .macro vector_stubs reg, mul, target, ns:vararg
    .irp n, \ns
    .balign 0x80
    mov     \reg, #(\n * \mul)
    b       \target
    .endr
    .endm

// A whole EL1 vector table \name (global, 2 KiB aligned): entry n is
// `mov \reg, #(n * \mul)` then `b \target`.
    .macro vector_table name, reg, mul, target
    .balign 0x800
    .global \name
\name:
    vector_stubs \reg, \mul, \target, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    .endm

// Vector entries that hand the exception to the runtime's own entry n of
// guest_vectors (asm/entry.S), for a table that handles only some entries itself.
    .macro vector_forward ns:vararg
    .irp n, \ns
    .balign 0x80
    b       guest_vectors + 0x80 * \n
    .endr
    .endm

    .endif
