// Entry at EL2 (QEMU virt with virtualization=on loads the ELF and jumps here).
// Installs a last-resort vector table first, checks the exception level, sets up
// the stack, clears .bss, turns on the EL2 MMU with a static identity map, and
// calls Rust.

.equ SYS_EXIT, 0x18

.section .text.boot, "ax"
.global _start
_start:
    adr x9, boot_vectors
    msr vbar_el2, x9
    isb
    mrs x9, CurrentEL
    cmp x9, #(2 << 2)
    b.ne not_el2
    ldr x9, =__stack_top
    mov sp, x9
    ldr x9, =__bss_start
    ldr x10, =__bss_end
1:  cmp x9, x10
    b.hs 2f
    str xzr, [x9], #8
    b 1b
2:
    bl enable_el2_mmu
    mov x0, xzr
    bl rust_main
3:  wfe
    b 3b

// Secondary cores, started by PSCI CPU_ON (SMC to QEMU's firmware) with
// x0 = context = the core's index (1, 2, ...). Each gets its own 128 KiB stack
// below the boot core's.
.global secondary_start
secondary_start:
    adr x9, boot_vectors
    msr vbar_el2, x9
    isb
    mov x19, x0
    ldr x9, =__stack_top
    mov x10, #0x20000
    msub x9, x10, x19, x9
    mov sp, x9
    bl enable_el2_mmu
    mov x0, x19
    bl secondary_main
4:  wfe
    b 4b

// Turns on the EL2 MMU with the static identity map (clobbers x9).
enable_el2_mmu:
    // MAIR_EL2: Attr0 = Device-nGnRnE (0x00), Attr1 = Normal write-back (0xff).
    mov x9, #0xff00
    msr mair_el2, x9
    // TCR_EL2: T0SZ = 32 (4 GiB, walk starts at level 1), IRGN0 = ORGN0 = 1,
    // SH0 = 3, TG0 = 4 KiB, PS = 40 bits, RES1 bits 31 and 23.
    ldr x9, =0x80823520
    msr tcr_el2, x9
    adr x9, el2_l1_table
    msr ttbr0_el2, x9
    isb
    tlbi alle2
    dsb nsh
    isb
    // SCTLR_EL2: M, C, SA, I on; RES1 bits 4, 5, 11, 16, 18, 22, 23, 28, 29.
        ldr x9, =0x30c5183d
    msr sctlr_el2, x9
    isb
    ret

not_el2:
    mov x0, #103
    b semihost_exit_x0

// x0 = status. Ends QEMU through semihosting SYS_EXIT (needs -semihosting).
semihost_exit_x0:
    adr x1, exit_block
    str x0, [x1, #8]
    mov w0, #SYS_EXIT
    hlt #0xf000
4:  wfe
    b 4b

// Faults before Rust installs the arm_vcpu vectors end the run with status 102.
.balign 2048
boot_vectors:
.rept 16
    .balign 128
    mov x0, #102
    b semihost_exit_x0
.endr

.section .data.boot, "aw"
.balign 16
exit_block:
    .quad 0x20026
    .quad 0

// Level-1 table: four 1 GiB blocks. 0-1 GiB devices (Attr0, XN), 1-4 GiB normal
// memory (Attr1, inner shareable). Block descriptor: bits[1:0] = 0b01, AF = bit 10.
.balign 4096
el2_l1_table:
    .quad 0x00000000 | (1 << 54) | (1 << 10) | (0 << 2) | 1
    .quad 0x40000000 | (1 << 10) | (3 << 8) | (1 << 2) | 1
    .quad 0x80000000 | (1 << 10) | (3 << 8) | (1 << 2) | 1
    .quad 0xc0000000 | (1 << 10) | (3 << 8) | (1 << 2) | 1
