//! The exit fast paths of `run()` against the general path they shortcut: the MMIO
//! fast path (`exit::is_fast_mmio` + `Aarch64VCpu::mmio_exit`) against
//! `decode_sync` / `handle_sync_exit`, an access served inside `run_with` (an
//! `InlineExits` device) against its exit and the host's completion, the packed pending load (`MmioLoad`) against
//! `extend_load`, and the fixed SMCCC answers (`smccc::fixed_answer` +
//! `complete_fixed_call`) against `smccc::dispatch` / `handle_sync_exit`. Exhaustive
//! over the syndrome bits each predicate reads, proptest over the rest.

use proptest::prelude::*;

use crate::context::Aarch64ContextFrame;
use crate::esr::{self, build, DataAbortIss, Syndrome};
use crate::exit::{decode_sync, extend_load, is_fast_mmio, MmioLoad, Pending};
use crate::smccc::{self, dispatch, fid, fixed_answer, Conduit, Outcome, SmcForwardList};
use crate::vcpu::complete_fixed_call;
use crate::workaround::Workarounds;
use crate::*;

/// SPSR_EL2.SS (bit 21): a step was active when the guest trapped.
const SS: u64 = 1 << 21;

/// A vCPU with distinct register values, PC and PSTATE `spsr` (AArch64), set up with
/// the default (crate-emulating) policy.
fn vcpu(spsr: u64, seed: u64) -> Aarch64VCpu {
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    for n in 0..31 {
        v.set_gpr(n, seed.rotate_left(n as u32) ^ (n as u64) << 56)
            .unwrap();
    }
    let f = v.regs_mut();
    f.elr = 0x4008_0000;
    f.spsr = spsr;
    v
}

/// An `InlineExits` device that serves every access (`serve`) or none, reading
/// `value`, and records the last one it was offered.
struct Device {
    serve: bool,
    value: u64,
    seen: Option<(u64, AccessWidth, Option<u64>)>,
}

impl InlineExits for Device {
    fn read(&mut self, addr: u64, width: AccessWidth) -> Option<u64> {
        self.seen = Some((addr, width, None));
        self.serve.then_some(self.value)
    }
    fn write(&mut self, addr: u64, width: AccessWidth, data: u64) -> bool {
        self.seen = Some((addr, width, Some(data)));
        self.serve
    }
}

/// Whether `decode_sync` made the abort an MMIO exit.
fn decodes_as_mmio(esr: u64) -> bool {
    let syn = Syndrome {
        esr,
        far: 0x123,
        hpfar: 0x90_0000,
    };
    matches!(
        decode_sync(&syn, &Aarch64ContextFrame::default()).0,
        VmExit::MmioRead { .. } | VmExit::MmioWrite { .. }
    )
}

/// Every combination of the bits `is_fast_mmio` reads (EC, bit 63, IL, ISV, FnV, EA,
/// CM, S1PTW, DFSC) with the others set both ways: the predicate holds exactly when
/// `decode_sync` takes its MMIO branch for a 32-bit instruction (IL = 1, as every
/// trap from AArch64 state has; a 16-bit T32 one takes the generic path).
#[test]
fn fast_mmio_predicate_is_the_decoders_mmio_branch() {
    let mut fast = 0;
    for ec in [0x24u64, 0x25, 0x20, 0x16, 0x18, 0x00, 0x3f] {
        for top in [0u64, 1 << 63] {
            for il in [0u64, 1 << 25] {
                for isv in [0u64, 1 << 24] {
                    for b10_7 in 0u64..16 {
                        for dfsc in 0u64..64 {
                            for rest in [0u64, (0x3f << 16) | (3 << 22) | (1 << 15) | (1 << 6)] {
                                let esr = top | ec << 26 | il | isv | b10_7 << 7 | dfsc | rest;
                                let want = top == 0 && il != 0 && decodes_as_mmio(esr);
                                assert_eq!(is_fast_mmio(esr), want, "ESR {esr:#x}");
                                fast += want as u32;
                            }
                        }
                    }
                }
            }
        }
    }
    // IL, ISV, bits [10:7] clear, 12 DFSC values, both `rest` patterns, EC 0x24 only.
    assert_eq!(fast, 12 * 2);
    // The decoder takes IL = 0 aborts as MMIO too (AArch32 T32): the generic path.
    assert!(decodes_as_mmio(0x24 << 26 | 1 << 24 | 0x07));
}

/// A data abort the MMIO fast path may take and a PSTATE to take it from: ISV set;
/// SAS, SSE, SRT, SF, AR, VNCR/SET/... (bits \[23:11\]: `fields`) and WnR (`low` bit 0)
/// random; FnV, EA, CM, S1PTW clear; DFSC `dfsc` (a translation, access flag or
/// permission fault for 4..16); IL = 1 (a 32-bit instruction, as every one from
/// AArch64 state). PSTATE: AArch64 EL1h or EL0t, with or without a step.
fn fast_mmio_case(fields: u64, low: u64, dfsc: u64, el1: bool, step: bool) -> (u64, u64) {
    let esr = 0x24 << 26 | 1 << 25 | 1 << 24 | fields << 11 | (low & 1) << 6 | dfsc;
    let spsr = if el1 { 0b0101 } else { 0 } | if step { SS } else { 0 };
    (esr, spsr)
}

proptest! {
    /// The MMIO fast path (`mmio_exit`, what `run()` does for an exit `is_fast_mmio`
    /// accepts from AArch64 state) leaves the vCPU exactly as `handle_sync_exit` does:
    /// the same exit, pending completion, readiness and frame; and the completions
    /// (a load's value, a store's PC advance, both clearing SPSR.SS) agree.
    #[test]
    fn fast_mmio_equals_the_general_path(
        fields in 0u64..(1 << 14),
        low in 0u64..8,
        dfsc in 4u64..16,
        far: u64,
        hpfar: u64,
        seed: u64,
        el1: bool,
        step: bool,
        value: u64,
    ) {
        let (esr, spsr) = fast_mmio_case(fields, low, dfsc, el1, step);
        prop_assume!(is_fast_mmio(esr));
        let mut fast = vcpu(spsr, seed);
        let mut general = vcpu(spsr, seed);
        let a = fast.mmio_exit(esr, far, hpfar, &mut NoInlineExits);
        let b = general.handle_sync_exit(&Syndrome { esr, far, hpfar });
        prop_assert!(a.is_some());
        prop_assert_eq!(a, b);
        prop_assert_eq!(fast.pending, general.pending);
        prop_assert_eq!(fast.regs(), general.regs());
        match b {
            Some(VmExit::MmioRead { .. }) => {
                fast.complete_mmio_read(value).unwrap();
                general.complete_mmio_read(value).unwrap();
            }
            _ => {
                fast.resolve_pending().unwrap();
                general.resolve_pending().unwrap();
            }
        }
        prop_assert_eq!(fast.regs(), general.regs());
        prop_assert_eq!(fast.regs().spsr & SS, 0);
        prop_assert_eq!(fast.regs().elr, 0x4008_0000 + 4);
    }

    /// An access an `InlineExits` device serves inside `run_with` leaves the vCPU as
    /// its exit (`handle_sync_exit`) and the host's completion do: the device sees the
    /// exit's address, width and data, the load's value lands extended in its
    /// register, the PC advances, SPSR.SS clears, nothing is pending. One the device
    /// declines is the exit, with its completion pending, the frame untouched.
    #[test]
    fn mmio_served_inline_equals_the_exit_and_its_completion(
        fields in 0u64..(1 << 14),
        low in 0u64..8,
        dfsc in 4u64..16,
        far: u64,
        hpfar: u64,
        seed: u64,
        el1: bool,
        step: bool,
        value: u64,
        serve: bool,
    ) {
        let (esr, spsr) = fast_mmio_case(fields, low, dfsc, el1, step);
        prop_assume!(is_fast_mmio(esr));
        // As `run()` enters: nothing pending (the frame checked).
        let mut inline = vcpu(spsr, seed);
        let mut general = vcpu(spsr, seed);
        inline.resolve_pending().unwrap();
        general.resolve_pending().unwrap();
        let mut dev = Device { serve, value, seen: None };
        let a = inline.mmio_exit(esr, far, hpfar, &mut dev);
        let exit = general.handle_sync_exit(&Syndrome { esr, far, hpfar });
        let (seen, exit) = (dev.seen, exit.unwrap());
        match exit {
            VmExit::MmioRead { addr, width, .. } => {
                prop_assert_eq!(seen, Some((addr, width, None)));
            }
            VmExit::MmioWrite { addr, width, data } => {
                prop_assert_eq!(seen, Some((addr, width, Some(data))));
            }
            _ => prop_assert!(false, "not an MMIO exit: {:?}", exit),
        }
        if !serve {
            prop_assert_eq!(a, Some(exit));
            prop_assert_eq!(inline.pending, general.pending);
            prop_assert_eq!(inline.regs(), general.regs());
            return Ok(());
        }
        prop_assert_eq!(a, None);
        match exit {
            VmExit::MmioRead { .. } => general.complete_mmio_read(value).unwrap(),
            _ => general.resolve_pending().unwrap(),
        }
        prop_assert_eq!(inline.pending, Pending::None);
        prop_assert_eq!(general.pending, Pending::None);
        prop_assert_eq!(inline.regs(), general.regs());
        prop_assert_eq!(inline.regs().spsr & SS, 0);
        prop_assert_eq!(inline.regs().elr, 0x4008_0000 + 4);
    }

    /// The packed pending load keeps every field of its syndrome and extends a value as
    /// `extend_load` does.
    #[test]
    fn mmio_load_keeps_the_syndrome_and_extends_like_the_instruction(
        sas in 0u8..4, sse: bool, srt in 0u8..32, sf: bool, il: bool, dfsc in 4u8..16, value: u64,
    ) {
        let mut esr = build::data_abort(sas, sse, srt, sf, false, false, false, dfsc);
        if !il {
            esr &= !(1 << 25);
        }
        let iss = DataAbortIss::decode(esr);
        let load = MmioLoad::from_esr(esr);
        let width = AccessWidth::from_sas(sas);
        prop_assert_eq!(
            (load.reg(), load.width(), load.reg_64bit(), load.sign_extend(), load.len()),
            (iss.srt, width, iss.sf, iss.sse, esr::instruction_length(esr) as u8)
        );
        prop_assert_eq!(MmioLoad::new(iss.srt, width, iss.sf, iss.sse, load.len()), load);
        prop_assert_eq!(load.extend(value), extend_load(value, width, sse, sf));
        // What the general decoder records for that load.
        let syn = Syndrome { esr, far: 0, hpfar: 0 };
        prop_assert_eq!(decode_sync(&syn, &Aarch64ContextFrame::default()).1, Pending::MmioRead(load));
    }

    /// A fixed answer is what `dispatch` answers for that function ID, whatever the
    /// other arguments, the upper half of x0, the conduit, the forwarding list and the
    /// core's workaround decision.
    #[test]
    fn fixed_answers_are_the_dispatchers(n in 0u32..0x1_0000, hi: u32, x in proptest::array::uniform6(any::<u64>())) {
        for base in [0x8000_0000u32, 0xC000_0000, 0x8400_0000, 0xC400_0000] {
            let f = base | n;
            let Some(x0) = fixed_answer(f) else { continue };
            let args = [u64::from(hi) << 32 | u64::from(f), x[0], x[1], x[2], x[3], x[4], x[5]];
            let all = SmcForwardList::new().with(0, u32::MAX).unwrap();
            for conduit in [Conduit::Hvc, Conduit::Smc] {
                for fwd in [SmcForwardList::new(), all] {
                    for w in [Workarounds::UNKNOWN, Workarounds::default()] {
                        prop_assert_eq!(
                            dispatch(conduit, 0, &args, &fwd, &w),
                            Outcome::Answer([x0, 0, 0, 0]),
                            "fid {:#x}", f
                        );
                    }
                }
            }
        }
    }

    /// `run()`'s fixed-answer path (`complete_fixed_call`) leaves the frame as the
    /// general path (`handle_sync_exit` → `smccc_call`) does for the same HVC.
    #[test]
    fn fixed_call_completion_equals_the_general_path(which in 0usize..3, seed: u64, step: bool, hi: u32) {
        let f = [fid::SMCCC_VERSION, fid::PSCI_VERSION, fid::MIGRATE_INFO_TYPE][which];
        let spsr = 0b0101 | if step { SS } else { 0 };
        let mut general = vcpu(spsr, seed);
        general.set_gpr(0, u64::from(hi) << 32 | u64::from(f)).unwrap();
        let mut frame = *general.regs();
        let before = general.pending;
        let esr = build::call(0x16, 0);
        prop_assert_eq!(general.handle_sync_exit(&Syndrome { esr, far: 0, hpfar: 0 }), None);
        let x0 = fixed_answer(frame.gpr[0] as u32).unwrap();
        complete_fixed_call(&mut frame, x0);
        prop_assert_eq!(&frame, general.regs());
        // Neither records a completion.
        prop_assert_eq!(general.pending, before);
    }
}

/// The function IDs with a fixed answer, and their answers (PSCI 1.1, SMCCC 1.1,
/// MIGRATE_INFO_TYPE 2: no Trusted OS); everything else, including the 64-bit forms
/// and the queries whose answer depends on x1, goes to `dispatch`.
#[test]
fn fixed_answer_literals() {
    assert_eq!(fixed_answer(0x8000_0000), Some(0x1_0001));
    assert_eq!(fixed_answer(0x8400_0000), Some(0x1_0001));
    assert_eq!(fixed_answer(0x8400_0006), Some(2));
    for f in [
        0xC400_0000,
        0xC000_0000,
        fid::SMCCC_ARCH_FEATURES,
        fid::PSCI_FEATURES,
        fid::CPU_ON_64,
        fid::SMCCC_ARCH_WORKAROUND_1,
        0xC600_0000,
    ] {
        assert_eq!(fixed_answer(f), None, "{f:#x}");
    }
    assert_eq!(smccc::PSCI_VERSION_1_1, 0x1_0001);
}

/// The lazy FP/SIMD fast path (`is_fast_fp_trap` + `fp_first_use`): wherever the
/// predicate holds, the general path does the same (no exit, nothing pending, the
/// frame untouched, the registers loaded); it never holds for another class, an
/// asynchronous exit, a loaded or eager FP switch, or AArch32 state.
#[test]
fn fast_fp_trap_equals_the_general_path() {
    let mut fast = 0;
    for ec in [0x07u64, 0x00, 0x01, 0x16, 0x18, 0x24] {
        for iss in [0u64, 0x1e0_0000 | 0xe, 0x1ff_ffff] {
            for il in [0u64, 1 << 25] {
                for top in [0u64, 1 << 63] {
                    // AArch64 EL1h, AArch64 EL0t, AArch32 EL0 (User, A32 and T32).
                    for spsr in [0x3c5u64, 0x3c0, 0x10, 0x30] {
                        let esr = top | ec << 26 | il | iss;
                        let mut v = vcpu(spsr, esr);
                        let holds = v.is_fast_fp_trap(esr);
                        assert_eq!(
                            holds,
                            top == 0 && ec == 0x07 && spsr & 0x10 == 0,
                            "{esr:#x} spsr {spsr:#x}"
                        );
                        if !holds {
                            continue;
                        }
                        fast += 1;
                        let before = *v.regs();
                        let syn = Syndrome {
                            esr,
                            far: 0,
                            hpfar: 0,
                        };
                        assert_eq!(v.handle_sync_exit(&syn), None, "{esr:#x}");
                        assert!(v.fp_loaded(), "{esr:#x}");
                        assert_eq!(*v.regs(), before, "{esr:#x}");
                        // Loaded now: the next EC 0x07 is not the first use.
                        assert!(!v.is_fast_fp_trap(esr));
                    }
                }
            }
        }
    }
    assert_eq!(fast, 3 * 2 * 2);
    // An eagerly switched vCPU never takes it.
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default().with_fp_switch(FpSwitch::Eager))
        .unwrap();
    assert!(!v.is_fast_fp_trap(0x07 << 26 | 1 << 25));
}

/// `run_with`'s one compare: `esr::HVC64_IMM0` is exactly the syndrome of `HVC #0` from
/// AArch64 (DDI 0487 D17.2.37: EC 0x16, IL 1, ISS = imm16), and no other syndrome the
/// decoder reads as an HVC #0 — exhaustive over EC, IL and imm16, with RES0 ISS bits.
#[test]
fn hvc_imm0_is_the_one_syndrome_of_hvc_0() {
    assert_eq!(esr::HVC64_IMM0, 0x5a00_0000);
    for ec in 0..64u64 {
        for il in 0..2u64 {
            for imm in [0u64, 1, 0x80, 0x4711, 0xffff] {
                for res0 in [0u64, 1 << 16, 1 << 24, 1 << 32] {
                    let code = ec << 26 | il << 25 | res0 | imm;
                    let hvc0 = ec == esr::ExceptionClass::Hvc64 as u64
                        && il == 1
                        && res0 == 0
                        && esr::imm16(code) == 0;
                    assert_eq!(code == esr::HVC64_IMM0, hvc0, "{code:#x}");
                }
            }
        }
    }
    // An asynchronous exit (bit 63, set by the vectors) never matches.
    assert_ne!(esr::HVC64_IMM0 | 1 << 63, esr::HVC64_IMM0);
}
