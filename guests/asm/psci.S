// psci_secondary_entry: where PSCI CPU_ON starts vCPU 1 (the `psci` scenario).
//
// PSCI leaves the started core in EL1h, MMU off, DAIF masked, x0 = context_id and,
// with this hypervisor, every other GPR 0. Fold x1..x30 into x1 for that check,
// give the core its own stack and the runtime's vectors (VBAR_EL1 is reset by
// CPU_ON), and call psci_secondary_main(x0 = context_id, x1 = OR of x1..x30).

    .pushsection .text.psci, "ax"
    func    psci_secondary_entry
    .irp n, 2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30
    orr     x1, x1, x\n
    .endr
    adr_l   x2, psci_secondary_stack_top
    mov     sp, x2
    adr_l   x2, guest_vectors
    msr     vbar_el1, x2
    isb
    mov     x29, xzr
    mov     x30, xzr
    bl      psci_secondary_main
1:  wfe
    b       1b
    .size psci_secondary_entry, . - psci_secondary_entry
    .popsection

    .pushsection .bss.psci_secondary_stack, "aw", %nobits
    .balign 16
    .space  0x4000
psci_secondary_stack_top:
    .popsection
