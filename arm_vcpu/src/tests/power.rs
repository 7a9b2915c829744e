//! The PSCI power state (`power.rs`): how CPU_OFF, SYSTEM_OFF/RESET, their failed
//! completions, `power_on`, the first entry and `set_power_state` move it, and what
//! `run()` says about a vCPU that is off.

use crate::esr::Syndrome;
use crate::smccc::{fid, ret};
use crate::*;

/// `ESR_EL2` of an `hvc #0` (EC 0x16, IL = 1).
const HVC: u64 = 0x5A00_0000;

fn vcpu(config: Aarch64VCpuCreateConfig) -> Aarch64VCpu {
    let mut v = Aarch64VCpu::new(config).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    v.set_entry(0x4008_0000).unwrap();
    v
}

/// Makes the guest call PSCI function `x[0]` with arguments `x[1..]` over HVC and
/// returns the exit the host sees.
fn psci_call(v: &mut Aarch64VCpu, x: &[u64]) -> Option<VmExit> {
    for (n, &value) in x.iter().enumerate() {
        v.set_gpr(n, value).unwrap();
    }
    v.handle_sync_exit(&Syndrome {
        esr: HVC,
        ..Default::default()
    })
}

#[test]
fn psci_requests_move_the_callers_power_state() {
    // (call, state once it reaches the host, an allowed completion, state after it)
    let rows: &[(&[u64], PowerState, i32, PowerState)] = &[
        (
            &[fid::CPU_OFF as u64],
            PowerState::Off,
            ret::DENIED,
            PowerState::On,
        ),
        (
            &[fid::SYSTEM_OFF as u64],
            PowerState::Off,
            ret::INTERNAL_FAILURE,
            PowerState::On,
        ),
        (
            &[fid::SYSTEM_RESET as u64],
            PowerState::Off,
            ret::DENIED,
            PowerState::On,
        ),
        (
            &[fid::CPU_ON_64 as u64, 1, 0x4010_0000, 0],
            PowerState::On,
            ret::SUCCESS,
            PowerState::On,
        ),
        (
            &[fid::AFFINITY_INFO_64 as u64, 1, 0],
            PowerState::On,
            1,
            PowerState::On,
        ),
        (
            &[fid::CPU_SUSPEND_32 as u64, 0],
            PowerState::On,
            ret::SUCCESS,
            PowerState::On,
        ),
    ];
    for &(call, after_exit, result, after_completion) in rows {
        let mut v = vcpu(Aarch64VCpuCreateConfig::default());
        assert_eq!(v.power_state(), PowerState::On, "a new vCPU is on");
        let exit = psci_call(&mut v, call);
        assert!(
            matches!(exit, Some(VmExit::Psci { .. })),
            "{call:x?}: {exit:?}"
        );
        assert_eq!(v.power_state(), after_exit, "{call:x?} reaching the host");
        v.complete_psci(result).unwrap();
        assert_eq!(
            v.power_state(),
            after_completion,
            "{call:x?} completed with {result}"
        );
    }
}

#[test]
fn calls_the_crate_answers_leave_it_on() {
    let mut v = vcpu(Aarch64VCpuCreateConfig::default());
    for f in [
        fid::PSCI_VERSION,
        fid::PSCI_FEATURES,
        fid::MIGRATE_INFO_TYPE,
    ] {
        assert_eq!(psci_call(&mut v, &[f as u64, fid::CPU_OFF as u64]), None);
        assert_eq!(v.power_state(), PowerState::On);
    }
}

#[test]
fn cpu_off_then_cpu_on_then_entry() {
    let mut v = vcpu(Aarch64VCpuCreateConfig::default());
    assert!(psci_call(&mut v, &[fid::CPU_OFF as u64]).is_some());
    // Off: run() refuses it before anything else (even on an unbound vCPU).
    assert_eq!(v.run(), Err(VCpuError::PoweredOff));
    // Another vCPU's CPU_ON, carried out by the host: on-pending until entered.
    let _ = v.power_on(0x4010_0000, 9).unwrap();
    assert_eq!(v.power_state(), PowerState::OnPending);
    // Not bound here, so no entry happens and it stays on-pending.
    assert_eq!(v.run(), Err(VCpuError::NotBound));
    assert_eq!(v.power_state(), PowerState::OnPending);
}

#[test]
fn created_powered_off() {
    let mut v = vcpu(Aarch64VCpuCreateConfig::default().with_powered_off(true));
    assert_eq!(v.power_state(), PowerState::Off);
    assert_eq!(v.run(), Err(VCpuError::PoweredOff));
    // Setting the entry is not powering on.
    v.set_entry(0x4020_0000).unwrap();
    assert_eq!(v.power_state(), PowerState::Off);
    let _ = v.power_on(0x4020_0000, 0).unwrap();
    assert_eq!(v.power_state(), PowerState::OnPending);
}

#[test]
fn set_power_state_is_what_run_sees() {
    let mut v = vcpu(Aarch64VCpuCreateConfig::default());
    v.set_power_state(PowerState::Off);
    assert_eq!(v.power_state(), PowerState::Off);
    assert_eq!(v.run(), Err(VCpuError::PoweredOff));
    v.set_power_state(PowerState::On);
    assert_eq!(v.run(), Err(VCpuError::NotBound));
    v.set_power_state(PowerState::OnPending);
    assert_eq!(v.run(), Err(VCpuError::NotBound));
    // set_power_state changes no register (power_on does).
    assert_eq!(v.pc(), 0x4008_0000);
}

#[test]
fn affinity_info_values() {
    // PSCI (DEN 0022) AFFINITY_INFO: 0 ON, 1 OFF, 2 ON_PENDING.
    assert_eq!(PowerState::On.affinity_info(), 0);
    assert_eq!(PowerState::Off.affinity_info(), 1);
    assert_eq!(PowerState::OnPending.affinity_info(), 2);
    for s in [PowerState::On, PowerState::Off, PowerState::OnPending] {
        assert!(crate::PsciRequest::AffinityInfo { target_mpidr: 0 }.allows(s.affinity_info()));
    }
}
