// aarch32_probe(target: x0, spsr: x1, probe: x2)
//
// For the `aarch32` scenario. Installs `a32_vectors` as VBAR_EL1, loads R0..R14
// (X0..X14) from probe->r[0..15], and ERETs to `target` with SPSR_EL1 = `spsr` (an
// AArch32 User-mode PSTATE: M[4:0] = 0b10000, T for T32, NZCV and IT as chosen).
// The EL0 snippets below run there and end with an SVC; whatever exception ends
// them (the SVC, an UNDEF, an abort, an SError) arrives at one of the vectors, which
// record into `probe` (layout: `Probe` in src/bin/aarch32.rs):
//   r[0..15] = X0..X14 (R0..R14) at the exception, [15] vector offset, [16] ESR_EL1,
//   [17] ELR_EL1, [18] SPSR_EL1, [19] FAR_EL1, [20] number of exceptions taken,
// then return to the caller at EL1h with its SP, callee-saved registers and
// VBAR_EL1 = guest_vectors. The vectors use only X15..X17, which AArch32 User mode
// cannot name (their values are UNKNOWN to AArch64 after AArch32 ran anyway).

    .pushsection .text.aarch32, "ax"
    func    aarch32_probe
    frame_push
    str_l   x2, a32_probe_ptr, x9
    probe_enter a32_saved_sp, a32_vectors
    msr     elr_el1, x0
    msr     spsr_el1, x1
    mov     x15, x2
    ldp_seq x15, 0, x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14
    isb
    eret
    .size aarch32_probe, . - aarch32_probe

// Every vector slot records and returns to the caller of aarch32_probe.
    vector_table a32_vectors, x15, 0x80, a32_vector_common

a32_vector_common:
    ldr_l   x16, a32_probe_ptr, x16
    stp_seq x16, 0, x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14
    str     x15, [x16, #120]
    mrs_seq x17, x16, 128, esr_el1, elr_el1, spsr_el1, far_el1
    ldr     x17, [x16, #160]
    add     x17, x17, #1
    str     x17, [x16, #160]
    probe_leave a32_saved_sp

// ---------------------------------------------------------------------------------
// AArch32 EL0 snippets. The aarch64 assembler cannot assemble A32/T32, so each
// instruction is a hand-encoded word (A32: one .word) or halfword pair (T32: .hword,
// first halfword first), with its mnemonic. Offsets from each label are what
// src/bin/aarch32.rs expects ELR to be. (Register lists are written {{..}}: this file
// goes through global_asm!, which reads single braces as operands.)
// ---------------------------------------------------------------------------------
    .balign 4
// --- A32 ---
    .global a32_dbgdidr
a32_dbgdidr:
    .word   0xee100e10      // +0  mrc  p14, 0, r0, c0, c0, 0      (DBGDIDR)
    .word   0xef000000      // +4  svc  #0
    .global a32_dbgdidr_nzcv
a32_dbgdidr_nzcv:
    .word   0xee10fe10      // +0  mrc  p14, 0, APSR_nzcv, c0, c0, 0
    .word   0xef000000      // +4  svc  #0
    .global a32_dbgdscr
a32_dbgdscr:
    .word   0xee101e11      // +0  mrc  p14, 0, r1, c0, c1, 0      (DBGDSCRint)
    .word   0xef000000      // +4  svc  #0
    .global a32_dcc
a32_dcc:
    .word   0xee002e15      // +0  mcr  p14, 0, r2, c0, c5, 0      (DBGDTRTXint)
    .word   0xee101e15      // +4  mrc  p14, 0, r1, c0, c5, 0      (DBGDTRRXint)
    .word   0xef000000      // +8  svc  #0
    .global a32_dbgdrar
a32_dbgdrar:
    .word   0xec510e01      // +0  mrrc p14, 0, r0, r1, c1         (DBGDRAR, 64-bit)
    .word   0xee112e10      // +4  mrc  p14, 0, r2, c1, c0, 0      (DBGDRAR, 32-bit)
    .word   0xee123e10      // +8  mrc  p14, 0, r3, c2, c0, 0      (DBGDSAR, 32-bit)
    .word   0xef000000      // +12 svc  #0
    .global a32_timer
a32_timer:
    .word   0xec432f2e      // +0  mcrr p15, 2, r2, r3, c14        (CNTP_CVAL = r3:r2)
    .word   0xec554f2e      // +4  mrrc p15, 2, r4, r5, c14        (r5:r4 = CNTP_CVAL)
    .word   0xee0e0f32      // +8  mcr  p15, 0, r0, c14, c2, 1     (CNTP_CTL = r0)
    .word   0xee1e1f32      // +12 mrc  p15, 0, r1, c14, c2, 1     (r1 = CNTP_CTL)
    .word   0xee0e6f12      // +16 mcr  p15, 0, r6, c14, c2, 0     (CNTP_TVAL = r6)
    .word   0xee1e7f12      // +20 mrc  p15, 0, r7, c14, c2, 0     (r7 = CNTP_TVAL)
    .word   0xef000000      // +24 svc  #0
    .global a32_undef_cp14
a32_undef_cp14:
    .word   0xee700e15      // +0  mrc  p14, 3, r0, c0, c5, 0      (not an AArch32 register)
    .word   0xef000000      // +4  svc  #0
    .global a32_undef_mcr_pc
a32_undef_mcr_pc:
    .word   0xee0eff32      // +0  mcr  p15, 0, pc, c14, c2, 1     (CNTP_CTL from PC: CONSTRAINED
                            //     UNPREDICTABLE; the trap reaches EL2, which makes it UNDEFINED)
    .word   0xef000000      // +4  svc  #0
    .global a32_undef_mrrc_same
a32_undef_mrrc_same:
    .word   0xec544f2e      // +0  mrrc p15, 2, r4, r4, c14        (Rt = Rt2: CONSTRAINED UNPREDICTABLE)
    .word   0xef000000      // +4  svc  #0
    .global a32_undef_dtrext
a32_undef_dtrext:
    .word   0xee100e52      // +0  mrc  p14, 0, r0, c0, c2, 2      (DBGDTRRXext: EL1 only)
    .word   0xef000000      // +4  svc  #0
    .global a32_undef_pmcr
a32_undef_pmcr:
    .word   0xee190f1c      // +0  mrc  p15, 0, r0, c9, c12, 0     (PMCR: PMU hidden)
    .word   0xef000000      // +4  svc  #0
    .global a32_stc
a32_stc:
    .word   0xed825e00      // +0  stc  p14, c5, [r2]              (STC from DBGDTRRXint)
    .word   0xef000000      // +4  svc  #0
    .global a32_cond_fail
a32_cond_fail:
    .word   0x1e100e10      // +0  mrcne p14, 0, r0, c0, c0, 0     (run with Z set: fails)
    .word   0xef000000      // +4  svc  #0
    .global a32_vfp
a32_vfp:
    .word   0xee000a10      // +0  vmov s0, r0                     (first FP use: lazy load)
    .word   0xee101a10      // +4  vmov r1, s0
    .word   0xef000000      // +8  svc  #0
    .global a32_ldr
a32_ldr:
    .word   0xe5921000      // +0  ldr  r1, [r2]
    .word   0xef000000      // +4  svc  #0
    .global a32_ldm
a32_ldm:
    .word   0xe8920018      // +0  ldm  r2, {{r3, r4}}               (no syndrome: ISV = 0)
    .word   0xef000000      // +4  svc  #0
    .global a32_str
a32_str:
    .word   0xe5821000      // +0  str  r1, [r2]
    .word   0xef000000      // +4  svc  #0
    .global a32_bx
a32_bx:
    .word   0xe12fff12      // +0  bx   r2
    .word   0xef000000      // +4  svc  #0
    .global a32_udf
a32_udf:
    .word   0xe7f000f0      // +0  udf  #0
    .word   0xef000000      // +4  svc  #0
    .global a32_serror
a32_serror:
    .word   0xe1a00000      // +0  mov  r0, r0                     (nop: a pending SError is taken)
    .word   0xe1a00000      // +4  mov  r0, r0
    .word   0xef000000      // +8  svc  #0

// --- T32 ---
    .global t32_dbgdidr
t32_dbgdidr:
    .hword  0xee10, 0x0e10  // +0  mrc  p14, 0, r0, c0, c0, 0      (DBGDIDR)
    .hword  0xdf00          // +4  svc  #0
    .balign 4
    .global t32_it_emulated
t32_it_emulated:
    .hword  0xbf0c          // +0  ite  eq
    .hword  0xee10, 0x0e10  // +2  mrceq p14, 0, r0, c0, c0, 0     (emulated: IT must advance)
    .hword  0x2007          // +6  movne r0, #7
    .hword  0xdf00          // +8  svc  #0
    .balign 4
    .global t32_timer
t32_timer:
    .hword  0xec55, 0x4f2e  // +0  mrrc p15, 2, r4, r5, c14        (CNTP_CVAL)
    .hword  0xee1e, 0x1f32  // +4  mrc  p15, 0, r1, c14, c2, 1     (CNTP_CTL)
    .hword  0xdf00          // +8  svc  #0
    .balign 4
    .global t32_ldr16
t32_ldr16:
    .hword  0x6811          // +0  ldr  r1, [r2]                   (16-bit)
    .hword  0xdf00          // +2  svc  #0
    .balign 4
    .global t32_ldm16
t32_ldm16:
    .hword  0xca18          // +0  ldm  r2!, {{r3, r4}}              (16-bit, ISV = 0)
    .hword  0xdf00          // +2  svc  #0
    .balign 4
    .global t32_it_mmio
t32_it_mmio:
    .hword  0xbf0c          // +0  ite  eq
    .hword  0x6811          // +2  ldreq r1, [r2]                  (emulated MMIO: IT must advance)
    .hword  0x2107          // +4  movne r1, #7
    .hword  0xdf00          // +6  svc  #0
    .balign 4
    .global t32_udf16
t32_udf16:
    .hword  0xde00          // +0  udf  #0                         (16-bit)
    .hword  0xdf00          // +2  svc  #0
    .balign 4
    .global t32_udf32
t32_udf32:
    .hword  0xf7f0, 0xa000  // +0  udf.w #0                        (32-bit)
    .hword  0xdf00          // +4  svc  #0
    .balign 4
    .global t32_undef_cp14
t32_undef_cp14:
    .hword  0xee70, 0x0e15  // +0  mrc  p14, 3, r0, c0, c5, 0
    .hword  0xdf00          // +4  svc  #0
    .balign 4
    .global t32_undef_in_it
t32_undef_in_it:
    .hword  0xbf08          // +0  it   eq
    .hword  0xee70, 0x0e15  // +2  mrceq p14, 3, r0, c0, c5, 0     (UNDEF inside an IT block)
    .hword  0xdf00          // +6  svc  #0
    .balign 4
    .global t32_undef_in_it_trapped
t32_undef_in_it_trapped:
    .hword  0xbf08          // +0  it   eq
    .hword  0xec54, 0x4f2e  // +2  mrrceq p15, 2, r4, r4, c14      (Rt = Rt2: reaches EL2, UNDEF there)
    .hword  0xdf00          // +6  svc  #0
    .balign 4
    .global t32_vfp
t32_vfp:
    .hword  0xee00, 0x0a10  // +0  vmov s0, r0
    .hword  0xee10, 0x1a10  // +4  vmov r1, s0
    .hword  0xdf00          // +8  svc  #0
    .balign 4
    .global t32_cond_fail
t32_cond_fail:
    .hword  0xbf18          // +0  it   ne
    .hword  0xee10, 0x0e10  // +2  mrcne p14, 0, r0, c0, c0, 0     (run with Z set: fails)
    .hword  0xdf00          // +6  svc  #0
    .balign 4
    .global t32_str16
t32_str16:
    .hword  0x6011          // +0  str  r1, [r2]                   (16-bit)
    .hword  0xdf00          // +2  svc  #0
    .balign 4
    .popsection

    .pushsection .bss.aarch32_probe, "aw", %nobits
    .balign 8
a32_probe_ptr:
    .quad   0
a32_saved_sp:
    .quad   0
    .popsection
