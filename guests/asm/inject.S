// inject_probe(target: x0, spsr: x1, arg: x2, rec: x3)
//
// For the `inject` scenario. Installs `inject_vectors` as VBAR_EL1, then ERETs to
// `target` with SPSR_EL1 = `spsr` (so the PSTATE in force at the faulting
// instruction is exactly `spsr`: EL0t/EL1t/EL1h, NZCV, DAIF) and x2 = `arg`. The
// targets below execute one instruction that should make the guest take an
// exception; if none comes they branch to `probe_fallthrough`.
//
// Every vector slot records, in `rec` (see `Record` in src/bin/inject.rs):
//   [0] number of exceptions taken (incremented), [1] vector offset,
//   [2] ESR_EL1, [3] FAR_EL1, [4] ELR_EL1, [5] SPSR_EL1,
//   [6] DAIF and [7] SPSel in the handler,
// then ERETs to `probe_recover` at EL1h with DAIF masked. Both ways end in
// `probe_epilogue`, which restores SP (SP_EL1), VBAR_EL1 = guest_vectors and the
// callee-saved registers. The handler uses only x9..x11 and no stack.

    .pushsection .text.inject, "ax"
    func    inject_probe
    frame_push
    str_l   x3, probe_rec, x9
    probe_enter probe_sp, inject_vectors
    msr     elr_el1, x0
    msr     spsr_el1, x1
    isb
    eret
    .size inject_probe, . - inject_probe

// A target did not fault: back to EL1h (it may have run at EL1t).
probe_fallthrough:
    msr     spsel, #1
probe_epilogue:
    msr     daifset, #0xf
    probe_leave probe_sp

// Targets (entered by ERET with x2 = arg).
    .global inject_t_impdef
inject_t_impdef:
    mrs     x0, S3_1_C15_C0_0       // IMPDEF register: trapped by HCR_EL2.TIDCP
    b       probe_fallthrough

    .global inject_t_pmu
inject_t_pmu:
    mrs     x0, pmcr_el0            // PMU register: trapped by MDCR_EL2.TPMCR/TPM
    b       probe_fallthrough

    .global inject_t_load
inject_t_load:
    ldr     x1, [x2]
    b       probe_fallthrough

    .global inject_t_store
inject_t_store:
    str     x1, [x2]
    b       probe_fallthrough

    .global inject_t_ldp
inject_t_ldp:
    ldp     x1, x3, [x2]            // no syndrome (ISV = 0)
    b       probe_fallthrough

    // Runs at EL0: no way back but an exception, so an SVC ends it if the load
    // does not fault (the check then sees EC 0x15).
    .global inject_t_el0_load
inject_t_el0_load:
    ldr     x1, [x2]
    svc     #0
1:  b       1b

    .global inject_t_blr
inject_t_blr:
    blr     x2
    b       probe_fallthrough

    .global inject_t_serror
inject_t_serror:
    msr     daifclr, #4             // unmask SError: a pending virtual one is taken
    isb
    nop
    nop
    b       probe_fallthrough

// The probe's vectors: every slot records and recovers.
    vector_table inject_vectors, x9, 0x80, inject_vector_common

inject_vector_common:
    ldr_l   x10, probe_rec, x10
    ldr     x11, [x10]
    add     x11, x11, #1
    str     x11, [x10]
    str     x9, [x10, #8]
    mrs_seq x11, x10, 16, esr_el1, far_el1, elr_el1, spsr_el1, daif, spsel
    adr     x11, probe_recover
    msr     elr_el1, x11
    mov     x11, #0x3c5             // EL1h, DAIF masked
    msr     spsr_el1, x11
    eret
probe_recover:
    b       probe_epilogue
    .popsection

    .pushsection .bss.inject_probe, "aw", %nobits
    .balign 8
probe_rec:
    .quad   0
probe_sp:
    .quad   0
    .popsection
