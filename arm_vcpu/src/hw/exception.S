// arm_vcpu: EL2 exception vectors and the guest world switch.
//
// All offsets are `const` operands computed from the Rust layout with
// `core::mem::offset_of!` (see context.rs, which also asserts the assumptions
// made here): {GPR}, {ELR}, {HOST_X19}, {HOST_X30}, {SERROR_ESR}, {HOST_FRAME}, {HOST_ELR},
// {HOST_ESR}, {FPCR}; {MUTATE} is 1 only in the mutation-test build.
//
// While a guest runs, SP_EL2 points at its `WorldSwitch` (frame first), so an
// exit vector can store the guest registers without a scratch register or a
// system-register read. The host's SP, x19, x29 and x30 are kept in the WorldSwitch.

.equ EXIT_IRQ,    (1 << 63) | 1
.equ EXIT_FIQ,    (1 << 63) | 2
.equ EXIT_SERROR, (1 << 63) | 3

.macro save_guest_gprs
    stp x0, x1,   [sp, #{GPR} + 0]
    stp x2, x3,   [sp, #{GPR} + 16]
    stp x4, x5,   [sp, #{GPR} + 32]
    stp x6, x7,   [sp, #{GPR} + 48]
    stp x8, x9,   [sp, #{GPR} + 64]
    stp x10, x11, [sp, #{GPR} + 80]
    stp x12, x13, [sp, #{GPR} + 96]
    stp x14, x15, [sp, #{GPR} + 112]
    stp x16, x17, [sp, #{GPR} + 128]
    stp x18, x19, [sp, #{GPR} + 144]
    stp x20, x21, [sp, #{GPR} + 160]
    stp x22, x23, [sp, #{GPR} + 176]
    stp x24, x25, [sp, #{GPR} + 192]
    stp x26, x27, [sp, #{GPR} + 208]
.if {MUTATE}
    // Mutation-test build only: x28 is deliberately not saved, so the guest
    // resumes with the x28 of an earlier exit. Only a preservation test sees it.
    str x29,      [sp, #{GPR} + 232]
.else
    stp x28, x29, [sp, #{GPR} + 224]
.endif
    str x30,      [sp, #{GPR} + 240]
.endm

// Back to the host: x0 holds the exit code. Restores the registers and the host
// SP that __arm_vcpu_enter saved in the WorldSwitch, then returns to its caller.
.macro return_to_host
    mrs x1, elr_el2
    mrs x2, spsr_el2
    stp x1, x2, [sp, #{ELR}]
    ldp x19, x29, [sp, #{HOST_X19}]
    ldp x30, x1, [sp, #{HOST_X30}]
    mov sp, x1
    ret
.endm

// Current-EL exception (the host itself): push a HostTrapFrame and call the
// Rust dispatcher with x0 = kind.
.macro host_trap kind
    sub sp, sp, #{HOST_FRAME}
    stp x0, x1, [sp, #0]
    mov x0, #\kind
    b __arm_vcpu_host_trap_common
.endm

.macro lower_exit kind
    save_guest_gprs
    mov x0, #(\kind & 0xff)
    b __arm_vcpu_lower_exit_common
.endm

.section .text.arm_vcpu.vectors, "ax"
.balign 2048
.global __arm_vcpu_vectors
__arm_vcpu_vectors:
// Current EL with SP_EL0.
.balign 128
    host_trap 0
.balign 128
    host_trap 1
.balign 128
    host_trap 2
.balign 128
    host_trap 3
// Current EL with SP_ELx.
.balign 128
    host_trap 4
.balign 128
    host_trap 5
.balign 128
    host_trap 6
.balign 128
    host_trap 7
// Lower EL, AArch64. The synchronous entry is the hot path and fits its slot:
// save x0-x30, return ESR_EL2 in x0 (bit 63 clear) to the host.
.balign 128
__arm_vcpu_lower_sync:
    save_guest_gprs
    mrs x0, esr_el2
    return_to_host
.balign 128
    lower_exit 1
.balign 128
    lower_exit 2
.balign 128
    lower_exit 3
// Lower EL, AArch32 (an AArch32 EL0 under the guest's EL1): same handling; the
// syndrome tells the classes apart.
.balign 128
    b __arm_vcpu_lower_sync
.balign 128
    lower_exit 1
.balign 128
    lower_exit 2
.balign 128
    lower_exit 3
.balign 128

// x0 = 1 (IRQ), 2 (FIQ) or 3 (SError); guest GPRs already saved.
__arm_vcpu_lower_exit_common:
    cmp x0, #3
    b.ne 1f
    mrs x1, esr_el2
    str x1, [sp, #{SERROR_ESR}]
1:  orr x0, x0, #(1 << 63)
    return_to_host

// u64 __arm_vcpu_enter(WorldSwitch *ws)
// Called from Rust inline asm (hw/mod.rs) that declares x0-x18, x20-x28 and x30
// clobbered; x19 and x29 (which inline asm cannot name), the return address and
// the host SP are kept in the WorldSwitch, so the host stack is not touched.
.section .text.arm_vcpu.enter, "ax"
.balign 64
.global __arm_vcpu_enter
__arm_vcpu_enter:
    stp x19, x29, [x0, #{HOST_X19}]
    mov x1, sp
    stp x30, x1, [x0, #{HOST_X30}]
    mov sp, x0
    ldp x1, x2, [sp, #{ELR}]
    msr elr_el2, x1
    msr spsr_el2, x2
    ldp x0, x1,   [sp, #{GPR} + 0]
    ldp x2, x3,   [sp, #{GPR} + 16]
    ldp x4, x5,   [sp, #{GPR} + 32]
    ldp x6, x7,   [sp, #{GPR} + 48]
    ldp x8, x9,   [sp, #{GPR} + 64]
    ldp x10, x11, [sp, #{GPR} + 80]
    ldp x12, x13, [sp, #{GPR} + 96]
    ldp x14, x15, [sp, #{GPR} + 112]
    ldp x16, x17, [sp, #{GPR} + 128]
    ldp x18, x19, [sp, #{GPR} + 144]
    ldp x20, x21, [sp, #{GPR} + 160]
    ldp x22, x23, [sp, #{GPR} + 176]
    ldp x24, x25, [sp, #{GPR} + 192]
    ldp x26, x27, [sp, #{GPR} + 208]
    ldp x28, x29, [sp, #{GPR} + 224]
    ldr x30,      [sp, #{GPR} + 240]
    eret
    // Not reached: stop straight-line speculation past the ERET.
    dsb nsh
    isb

// Host exceptions: x0 = kind, x0/x1 of the interrupted context already at [sp].
__arm_vcpu_host_trap_common:
    stp x2, x3,   [sp, #16]
    stp x4, x5,   [sp, #32]
    stp x6, x7,   [sp, #48]
    stp x8, x9,   [sp, #64]
    stp x10, x11, [sp, #80]
    stp x12, x13, [sp, #96]
    stp x14, x15, [sp, #112]
    stp x16, x17, [sp, #128]
    stp x18, x19, [sp, #144]
    stp x20, x21, [sp, #160]
    stp x22, x23, [sp, #176]
    stp x24, x25, [sp, #192]
    stp x26, x27, [sp, #208]
    stp x28, x29, [sp, #224]
    add x1, sp, #{HOST_FRAME}
    stp x30, x1,  [sp, #240]
    mrs x1, elr_el2
    mrs x2, spsr_el2
    stp x1, x2, [sp, #{HOST_ELR}]
    mrs x1, esr_el2
    mrs x2, far_el2
    stp x1, x2, [sp, #{HOST_ESR}]
    mov x1, sp
    bl __arm_vcpu_host_trap
    ldp x1, x2, [sp, #{HOST_ELR}]
    msr elr_el2, x1
    msr spsr_el2, x2
    ldp x2, x3,   [sp, #16]
    ldp x4, x5,   [sp, #32]
    ldp x6, x7,   [sp, #48]
    ldp x8, x9,   [sp, #64]
    ldp x10, x11, [sp, #80]
    ldp x12, x13, [sp, #96]
    ldp x14, x15, [sp, #112]
    ldp x16, x17, [sp, #128]
    ldp x18, x19, [sp, #144]
    ldp x20, x21, [sp, #160]
    ldp x22, x23, [sp, #176]
    ldp x24, x25, [sp, #192]
    ldp x26, x27, [sp, #208]
    ldp x28, x29, [sp, #224]
    ldr x30,      [sp, #240]
    ldp x0, x1,   [sp, #0]
    add sp, sp, #{HOST_FRAME}
    eret
    dsb nsh
    isb

// void __arm_vcpu_fpsimd_save(FpSimdState *s) / _restore(const FpSimdState *s)
.arch_extension fp
.arch_extension simd
.global __arm_vcpu_fpsimd_save
__arm_vcpu_fpsimd_save:
    stp q0, q1,   [x0, #0]
    stp q2, q3,   [x0, #32]
    stp q4, q5,   [x0, #64]
    stp q6, q7,   [x0, #96]
    stp q8, q9,   [x0, #128]
    stp q10, q11, [x0, #160]
    stp q12, q13, [x0, #192]
    stp q14, q15, [x0, #224]
    stp q16, q17, [x0, #256]
    stp q18, q19, [x0, #288]
    stp q20, q21, [x0, #320]
    stp q22, q23, [x0, #352]
    stp q24, q25, [x0, #384]
    stp q26, q27, [x0, #416]
    stp q28, q29, [x0, #448]
    stp q30, q31, [x0, #480]
    mrs x1, fpcr
    mrs x2, fpsr
    add x0, x0, #{FPCR}
    stp x1, x2, [x0]
    ret

.global __arm_vcpu_fpsimd_restore
__arm_vcpu_fpsimd_restore:
    ldp q0, q1,   [x0, #0]
    ldp q2, q3,   [x0, #32]
    ldp q4, q5,   [x0, #64]
    ldp q6, q7,   [x0, #96]
    ldp q8, q9,   [x0, #128]
    ldp q10, q11, [x0, #160]
    ldp q12, q13, [x0, #192]
    ldp q14, q15, [x0, #224]
    ldp q16, q17, [x0, #256]
    ldp q18, q19, [x0, #288]
    ldp q20, q21, [x0, #320]
    ldp q22, q23, [x0, #352]
    ldp q24, q25, [x0, #384]
    ldp q26, q27, [x0, #416]
    ldp q28, q29, [x0, #448]
    ldp q30, q31, [x0, #480]
    add x0, x0, #{FPCR}
    ldp x1, x2, [x0]
    msr fpcr, x1
    msr fpsr, x2
    ret
