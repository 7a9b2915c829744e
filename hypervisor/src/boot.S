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

// Secondary cores, started by PSCI CPU_ON (SMC to the firmware) with x0 = context =
// the address of the core's boot block (stack top, core index; the stack carved
// by Rust, see `smp::start_core`).
.global secondary_start
secondary_start:
    adr x9, boot_vectors
    msr vbar_el2, x9
    isb
    ldr x9, [x0]
    ldr x19, [x0, #8]
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
    // TCR_EL2: T0SZ = 25 (512 GiB, walk starts at level 1), IRGN0 = ORGN0 = 1,
    // SH0 = 3, TG0 = 4 KiB, PS = 40 bits, RES1 bits 31 and 23.
    ldr x9, =0x80823519
    msr tcr_el2, x9
    adrp x9, el2_l1_table
    add x9, x9, :lo12:el2_l1_table
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
    adrp x1, exit_block
    add x1, x1, :lo12:exit_block
    str x0, [x1, #8]
    mov w0, #SYS_EXIT
    hlt #0xf000
4:  wfe
    b 4b

// Faults before Rust installs the arm_vcpu vectors: the message below with ESR_EL2,
// ELR_EL2, FAR_EL2 and the vector's offset on the semihosting console (QEMU's stderr;
// no UART is known yet), then status 102. Uses no stack (it may be what faulted).
.balign 2048
boot_vectors:
.irp off, 0x000,0x080,0x100,0x180,0x200,0x280,0x300,0x380,0x400,0x480,0x500,0x580,0x600,0x680,0x700,0x780
    .balign 128
    mov x21, #\off
    b early_fault
.endr

early_fault:
    mrs x22, esr_el2
    mrs x23, elr_el2
    mrs x24, far_el2
    adr x0, msg_fault
    bl semihost_puts
    mov x0, x22
    bl semihost_hex
    adr x0, msg_elr
    bl semihost_puts
    mov x0, x23
    bl semihost_hex
    adr x0, msg_far
    bl semihost_puts
    mov x0, x24
    bl semihost_hex
    adr x0, msg_vec
    bl semihost_puts
    mov x0, x21
    bl semihost_hex
    adr x0, msg_nl
    bl semihost_puts
    mov x0, #102
    b semihost_exit_x0

// Semihosting SYS_WRITE0 of the NUL-terminated string at x0 (clobbers x0, x1).
semihost_puts:
    mov x1, x0
    mov w0, #0x04
    hlt #0xf000
    ret

// x0 as 0x followed by 16 hex digits, through SYS_WRITE0 (clobbers x0-x3).
semihost_hex:
    adrp x1, hex_buf
    add x1, x1, :lo12:hex_buf
    mov w2, #'0'
    strb w2, [x1], #1
    mov w2, #'x'
    strb w2, [x1], #1
    mov x3, #60
1:  lsr x2, x0, x3
    and x2, x2, #0xf
    cmp x2, #10
    add x2, x2, #'0'
    b.lo 2f
    add x2, x2, #('a' - '0' - 10)
2:  strb w2, [x1], #1
    subs x3, x3, #4
    b.pl 1b
    strb wzr, [x1]
    adrp x1, hex_buf
    add x1, x1, :lo12:hex_buf
    mov w0, #0x04
    hlt #0xf000
    ret

msg_fault: .asciz "ARM_VCPU_PANIC early exception at EL2 (before the arm_vcpu vectors): ESR_EL2 "
msg_elr:   .asciz " ELR_EL2 "
msg_far:   .asciz " FAR_EL2 "
msg_vec:   .asciz " vector offset "
msg_nl:    .asciz "\n"
.balign 4

.section .data.boot, "aw"
.balign 16
exit_block:
    .quad 0x20026
    .quad 0
hex_buf:
    .fill 20, 1, 0

// Level-1 table: 512 entries of 1 GiB. 0-1 GiB devices (Attr0, XN), 1-4 GiB normal
// memory (Attr1, inner shareable); RAM above 4 GiB is added by Rust once the device
// tree says where it is (`platform::discover`). Block descriptor: bits[1:0] = 0b01,
// AF = bit 10.
.balign 4096
.global el2_l1_table
el2_l1_table:
    .quad 0x00000000 | (1 << 54) | (1 << 10) | (0 << 2) | 1
    .quad 0x40000000 | (1 << 10) | (3 << 8) | (1 << 2) | 1
    .quad 0x80000000 | (1 << 10) | (3 << 8) | (1 << 2) | 1
    .quad 0xc0000000 | (1 << 10) | (3 << 8) | (1 << 2) | 1
    .fill 508, 8, 0
