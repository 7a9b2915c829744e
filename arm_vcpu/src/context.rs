//! Guest register state, grouped by when it is switched.
//!
//! * [`Aarch64ContextFrame`]: the general-purpose registers and the exception return
//!   state, saved and restored by the assembly world switch on every exit and entry.
//! * [`GuestSystemRegisters`]: EL1 system registers, timer, pointer-authentication
//!   keys, the registers of hidden features nothing traps, and the per-VM EL2
//!   controls, switched only at bind/unbind — all generated from one list
//!   ([`SWITCHED`]).
//! * [`FpSimdState`]: V0–V31, FPCR, FPSR, switched lazily (first use after bind).

use core::mem::{offset_of, size_of};

use crate::exit::SysRegAddr;
use crate::sysreg::{Feature, FeatureSet};

/// General-purpose register state of a vCPU (the "trap frame").
///
/// `gpr`, `elr` and `spsr` are saved on every exit and restored on every entry.
/// `sp_el0` is switched at bind/unbind only: the host runs at EL2 on `SP_EL2` and never
/// touches `SP_EL0`, so it stays live in the register while the vCPU is bound. Read it
/// with [`crate::Aarch64VCpu::sp_el0`].
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aarch64ContextFrame {
    /// x0..x30.
    pub gpr: [u64; 31],
    /// `SP_EL0`.
    pub sp_el0: u64,
    /// `ELR_EL2`: where the guest resumes.
    pub elr: u64,
    /// `SPSR_EL2`: the guest's PSTATE.
    pub spsr: u64,
}

/// The trap frame type of this architecture.
pub type TrapFrame = Aarch64ContextFrame;

/// `SPSR_EL2` for a vCPU's first entry: EL1h (M\[3:0\] = 0b0101), D, A, I, F masked.
pub const SPSR_EL1H_DAIF_MASKED: u64 = 0x3c5;

impl Aarch64ContextFrame {
    /// A frame that enters `pc` at EL1h with all exceptions masked.
    pub const fn new_el1h(pc: u64) -> Self {
        Self {
            gpr: [0; 31],
            sp_el0: 0,
            elr: pc,
            spsr: SPSR_EL1H_DAIF_MASKED,
        }
    }
}

/// State the assembly sees while a guest runs. `SP_EL2` points at it from the guest
/// entry until the exit vector has saved the guest registers, so the vector needs no
/// scratch register and no system-register read to find it.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WorldSwitch {
    /// The guest registers; must be at offset 0.
    pub frame: Aarch64ContextFrame,
    /// The host's x19 and x29 at guest entry (inline asm cannot declare them clobbered).
    pub host_x19_x29: [u64; 2],
    /// The host's x30 (return address) and `SP_EL2` at guest entry.
    pub host_x30_sp: [u64; 2],
    /// `ESR_EL2` of an SError exit (synchronous exits return it in x0 instead).
    pub serror_esr: u64,
}

/// Offsets the assembly uses, all derived from the Rust layout.
pub(crate) mod offsets {
    use super::*;
    /// Offset of x0 in [`WorldSwitch`].
    pub const GPR: usize = offset_of!(WorldSwitch, frame) + offset_of!(Aarch64ContextFrame, gpr);
    /// Offset of `ELR_EL2` (followed by `SPSR_EL2`, stored as one pair).
    pub const ELR: usize = offset_of!(WorldSwitch, frame) + offset_of!(Aarch64ContextFrame, elr);
    /// Offset of `SPSR_EL2`.
    pub const SPSR: usize = offset_of!(WorldSwitch, frame) + offset_of!(Aarch64ContextFrame, spsr);
    /// Offset of the saved host x19, x29 pair.
    pub const HOST_X19: usize = offset_of!(WorldSwitch, host_x19_x29);
    /// Offset of the saved host x30, SP pair.
    pub const HOST_X30: usize = offset_of!(WorldSwitch, host_x30_sp);
    /// Offset of the SError syndrome.
    pub const SERROR_ESR: usize = offset_of!(WorldSwitch, serror_esr);
    /// Size of the host trap frame pushed by the current-EL vectors.
    pub const HOST_TRAP_FRAME: usize = size_of::<crate::percpu::HostTrapFrame>();
    /// Offset of `ELR_EL2` in the host trap frame.
    pub const HOST_ELR: usize = offset_of!(crate::percpu::HostTrapFrame, elr);
    /// Offset of `ESR_EL2` in the host trap frame.
    pub const HOST_ESR: usize = offset_of!(crate::percpu::HostTrapFrame, esr);

    // The vectors store the frame with SP-relative pairs: x0 must be at the base of
    // the structure SP points to, the GPRs contiguous, and ELR/SPSR one pair.
    const _: () = assert!(GPR == 0);
    const _: () = assert!(offset_of!(Aarch64ContextFrame, gpr) == 0);
    const _: () = assert!(SPSR == ELR + 8);
    const _: () = assert!(ELR.is_multiple_of(16));
    const _: () = assert!(size_of::<WorldSwitch>().is_multiple_of(16));
    const _: () = assert!(HOST_TRAP_FRAME.is_multiple_of(16));
    const _: () = assert!(offset_of!(crate::percpu::HostTrapFrame, gpr) == 0);
    const _: () = assert!(offset_of!(crate::percpu::HostTrapFrame, spsr) == HOST_ELR + 8);
    // Immediate offsets of LDP/STP (64-bit) must be multiples of 8 below 512.
    const _: () = assert!(
        ELR < 504 && HOST_X19 < 504 && HOST_X30 < 504 && SERROR_ESR < 504 && HOST_ESR < 504
    );
    const _: () = assert!(HOST_X19.is_multiple_of(8) && HOST_X30.is_multiple_of(8));
}

/// How one entry of the switch list moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Guest state: loaded at bind, saved at unbind.
    Rw,
    /// A per-VM EL2 control the crate computes: loaded at bind unless the core's copy
    /// already holds the same values (`Aarch64PerCpu`'s control key: vCPUs of one VM
    /// share them), never saved (the guest cannot change it).
    Ctl,
    /// An EL2 control written at every bind, because unbind gives it back to the host
    /// (`HCR_EL2`, `MDCR_EL2`); never saved (`HCR_EL2.VSE` is saved apart).
    Entry,
    /// A per-vCPU EL2 control (`VMPIDR_EL2`): loaded with the vCPU's own state, so a
    /// rebind that finds that state still in the core skips it too; never saved.
    VcpuCtl,
    /// A timer control: loaded at bind (after its compare value), saved at unbind and
    /// then cleared, so the guest's timer cannot fire into the next vCPU or the host.
    TimerCtl,
    /// Guest state of a lazy group (the pointer-authentication keys): trapped until
    /// the guest's first use after bind, loaded then, and saved at unbind only if
    /// loaded (`Aarch64VCpu`'s lazy groups).
    Lazy,
}

impl Kind {
    /// The kind's bit in a selection mask (the crate's `sel` constants).
    pub const fn bit(self) -> u8 {
        1 << self as u8
    }
    /// Written by the load of selection `sel`.
    pub const fn loads(self, sel: u8) -> bool {
        self.bit() & sel != 0
    }
    /// Read at unbind (by a save that selects it).
    pub const fn saves(self) -> bool {
        matches!(self, Self::Rw | Self::TimerCtl | Self::Lazy)
    }
    /// Cleared after the save.
    pub const fn stops(self) -> bool {
        matches!(self, Self::TimerCtl)
    }
    /// An EL2 control (computed by the crate, never saved).
    pub const fn is_control(self) -> bool {
        matches!(self, Self::Ctl | Self::Entry | Self::VcpuCtl)
    }
    /// Whether selection `sel` takes any of `kinds` (one test per block of the list).
    #[inline(always)]
    pub const fn loads_any(kinds: &[Kind], sel: u8) -> bool {
        let mut i = 0;
        while i < kinds.len() {
            if kinds[i].loads(sel) {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// The per-VM EL2 controls of a vCPU ([`GuestSystemRegisters::vm_controls`]).
pub(crate) type VmControls = [u64; VM_CONTROLS];

/// Selections of the switch list's kinds for `GuestSystemRegisters::load_sel` and
/// `save_sel`.
pub(crate) mod sel {
    use super::Kind;
    /// Every entry.
    #[cfg(test)]
    pub const ALL: u8 = 0xff;
    /// The EL2 controls written at every bind.
    pub const ENTRY: u8 = Kind::Entry.bit();
    /// The per-VM EL2 controls (skipped when the core holds them already).
    pub const VM: u8 = Kind::Ctl.bit();
    /// The vCPU's own state loaded at a bind that does not find it in the core.
    pub const VCPU: u8 = Kind::VcpuCtl.bit() | Kind::Rw.bit() | Kind::TimerCtl.bit();
    /// The timer controls alone (unbind cleared them; a rebind that finds the rest of
    /// the vCPU's state in the core writes only these).
    pub const TIMER_CTL: u8 = Kind::TimerCtl.bit();
    /// What unbind saves of every vCPU.
    pub const SAVED: u8 = Kind::Rw.bit() | Kind::TimerCtl.bit();
    /// A lazy group's registers.
    pub const LAZY: u8 = Kind::Lazy.bit();
}

/// When an entry of the switch list is switched: always, or on hosts with a feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// On every host.
    Always,
    /// On hosts with the feature.
    Feat(Feature),
}

impl Gate {
    /// The feature's bit in a [`FeatureSet`] (0 for [`Gate::Always`]).
    pub const fn bits(self) -> u64 {
        match self {
            Self::Always => 0,
            Self::Feat(f) => 1 << f as u8,
        }
    }

    /// Whether the entry is switched on a host with `has`.
    #[inline(always)]
    pub const fn on(self, has: FeatureSet) -> bool {
        match self {
            Self::Always => true,
            Self::Feat(f) => has.has(f),
        }
    }
}

/// One entry of the switch list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switched {
    /// The register.
    pub addr: SysRegAddr,
    /// Its name.
    pub name: &'static str,
    /// How it moves.
    pub kind: Kind,
    /// On which hosts.
    pub gate: Gate,
}

/// Access to the system registers of the core, by encoding. `hw::Cpu` implements it
/// with one `mrs`/`msr` each (the encoding is a const generic, formatted into the
/// instruction as `S<op0>_<op1>_C<n>_C<m>_<op2>`); the host tests implement it with a
/// recording fake, so the load and save sequences generated from the switch list run
/// on the host too.
pub(crate) trait RegFile {
    /// `mrs` of the register encoded `E` (`SysRegAddr::0`).
    fn read<const E: u32>(&mut self) -> u64;
    /// `msr` of the register encoded `E`.
    fn write<const E: u32>(&mut self, v: u64);
}

/// A register file without registers (host builds, where there is no hardware to
/// switch): writes are dropped, reads give 0.
#[cfg(not(target_arch = "aarch64"))]
pub(crate) struct NoRegs;

#[cfg(not(target_arch = "aarch64"))]
impl RegFile for NoRegs {
    fn read<const E: u32>(&mut self) -> u64 {
        0
    }
    fn write<const E: u32>(&mut self, _v: u64) {}
}

/// The save sequence of one block of the switch list, two entries at a time: both
/// registers are read (and a timer stopped) before both values are stored, so that the
/// two stores are adjacent and become one `stp` (an `mrs` is an asm statement the
/// compiler does not move stores across). Entries: `[attrs] kind field (encoding);`.
macro_rules! save_pairs {
    (@one $s:ident, $f:ident, $sel:ident, $k:ident, $o0:literal, $o1:literal, $crn:literal, $crm:literal, $o2:literal) => {
        if Kind::$k.saves() && Kind::$k.loads($sel) {
            let v = $f.read::<{ SysRegAddr::new($o0, $o1, $crn, $crm, $o2).0 }>();
            if Kind::$k.stops() {
                $f.write::<{ SysRegAddr::new($o0, $o1, $crn, $crm, $o2).0 }>(0);
            }
            Some(v)
        } else {
            None
        }
    };
    ($s:ident, $f:ident, $sel:ident;) => {};
    ($s:ident, $f:ident, $sel:ident;
     [$(#[$a1:meta])*] $k1:ident $f1:ident ($a0:literal, $a1_:literal, $a2:literal, $a3:literal, $a4:literal);
     [$(#[$b1:meta])*] $k2:ident $f2:ident ($b0:literal, $b1_:literal, $b2:literal, $b3:literal, $b4:literal);
     $($rest:tt)*) => {
        $(#[$a1])* let v1 = save_pairs!(@one $s, $f, $sel, $k1, $a0, $a1_, $a2, $a3, $a4);
        $(#[$b1])* let v2 = save_pairs!(@one $s, $f, $sel, $k2, $b0, $b1_, $b2, $b3, $b4);
        $(#[$a1])* if let Some(v) = v1 { $s.$f1 = v; }
        $(#[$b1])* if let Some(v) = v2 { $s.$f2 = v; }
        save_pairs!($s, $f, $sel; $($rest)*);
    };
    ($s:ident, $f:ident, $sel:ident;
     [$(#[$a1:meta])*] $k1:ident $f1:ident ($a0:literal, $a1_:literal, $a2:literal, $a3:literal, $a4:literal);) => {
        $(#[$a1])* if let Some(v) = save_pairs!(@one $s, $f, $sel, $k1, $a0, $a1_, $a2, $a3, $a4) { $s.$f1 = v; }
    };
}

/// The load sequence of one block, two entries at a time: both values are read from
/// memory before the two `msr`s, so that the two loads become one `ldp`.
macro_rules! load_pairs {
    ($s:ident, $f:ident, $sel:ident;) => {};
    ($s:ident, $f:ident, $sel:ident;
     [$(#[$a1:meta])*] $k1:ident $f1:ident ($a0:literal, $a1_:literal, $a2:literal, $a3:literal, $a4:literal);
     [$(#[$b1:meta])*] $k2:ident $f2:ident ($b0:literal, $b1_:literal, $b2:literal, $b3:literal, $b4:literal);
     $($rest:tt)*) => {
        $(#[$a1])* let v1 = $s.$f1;
        $(#[$b1])* let v2 = $s.$f2;
        $(#[$a1])* if Kind::$k1.loads($sel) {
            $f.write::<{ SysRegAddr::new($a0, $a1_, $a2, $a3, $a4).0 }>(v1);
        }
        $(#[$b1])* if Kind::$k2.loads($sel) {
            $f.write::<{ SysRegAddr::new($b0, $b1_, $b2, $b3, $b4).0 }>(v2);
        }
        load_pairs!($s, $f, $sel; $($rest)*);
    };
    ($s:ident, $f:ident, $sel:ident;
     [$(#[$a1:meta])*] $k1:ident $f1:ident ($a0:literal, $a1_:literal, $a2:literal, $a3:literal, $a4:literal);) => {
        $(#[$a1])* if Kind::$k1.loads($sel) {
            $f.write::<{ SysRegAddr::new($a0, $a1_, $a2, $a3, $a4).0 }>($s.$f1);
        }
    };
}

/// Generates [`GuestSystemRegisters`] (one `u64` per entry), [`SWITCHED`] and the load
/// and save sequences from one list, so that the two sequences and the list cannot
/// disagree. Entries are `kind field "NAME" (op0, op1, CRn, CRm, op2);` in blocks that
/// share a [`Gate`]; attributes on an entry (the mutation builds' `cfg`) apply to its
/// load and its save. Load and save follow the list's order. The blocks after `rare:`
/// belong to features few cores have ([`RARE`]): the sequences test once whether the
/// host has any of them, so a core without pays one branch for all of them.
macro_rules! switch_list {
    ($( [$gate:expr] {
        $( $(#[$attr:meta])* $kind:ident $field:ident $name:literal
           ($o0:literal, $o1:literal, $crn:literal, $crm:literal, $o2:literal); )*
    } )*
    rare:
    $( [$rgate:expr] {
        $( $(#[$rattr:meta])* $rkind:ident $rfield:ident $rname:literal
           ($ro0:literal, $ro1:literal, $rcrn:literal, $rcrm:literal, $ro2:literal); )*
    } )*) => {
        /// The EL1 system registers and per-VM EL2 controls of one vCPU, switched at
        /// bind/unbind (never on an exit). Each field holds the register it is named
        /// after; see [`SWITCHED`] for which hosts switch it.
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct GuestSystemRegisters {
            $( $(
                #[doc = concat!("`", $name, "`")]
                pub $field: u64,
            )* )*
            $( $(
                #[doc = concat!("`", $rname, "`")]
                pub $rfield: u64,
            )* )*
        }

        /// Every register the bind/unbind switch moves, in the order it moves them.
        pub const SWITCHED: &[Switched] = &[
            $( $( Switched {
                addr: SysRegAddr::new($o0, $o1, $crn, $crm, $o2),
                name: $name,
                kind: Kind::$kind,
                gate: $gate,
            }, )* )*
            $( $( Switched {
                addr: SysRegAddr::new($ro0, $ro1, $rcrn, $rcrm, $ro2),
                name: $rname,
                kind: Kind::$rkind,
                gate: $rgate,
            }, )* )*
        ];

        /// How many entries are per-VM EL2 controls ([`Kind::Ctl`]).
        pub const VM_CONTROLS: usize = 0 $( $( + matches!(Kind::$kind, Kind::Ctl) as usize )* )*
            $( $( + matches!(Kind::$rkind, Kind::Ctl) as usize )* )*;

        /// The features of the blocks after `rare:` in the switch list.
        pub const RARE: FeatureSet = FeatureSet(0 $( | $rgate.bits() )*);

        impl GuestSystemRegisters {
            /// Writes every entry into `f` (the core's registers), for a host with
            /// features `has`.
            #[cfg(test)]
            #[inline(always)]
            pub(crate) fn load<F: RegFile>(&self, has: FeatureSet, f: &mut F) {
                self.load_sel::<{ sel::ALL }, F>(has, f)
            }

            /// Writes the entries of the kinds selected by `SEL` ([`sel`]) into `f`, in
            /// the list's order, for a host with features `has`. Out of line: with the
            /// structure's own address as the base, its fields are in `ldp` range.
            #[inline(never)]
            pub(crate) fn load_sel<const SEL: u8, F: RegFile>(&self, has: FeatureSet, f: &mut F) {
                $( if Kind::loads_any(&[$(Kind::$kind),*], SEL) && Gate::on($gate, has) {
                    load_pairs!(self, f, SEL; $( [$(#[$attr])*] $kind $field ($o0, $o1, $crn, $crm, $o2); )*);
                } )*
                if has.0 & RARE.0 != 0 && Kind::loads_any(&[$($(Kind::$rkind),*),*], SEL) {
                    $( if Gate::on($rgate, has) {
                        $( $(#[$rattr])* {
                            if Kind::$rkind.loads(SEL) {
                                f.write::<{ SysRegAddr::new($ro0, $ro1, $rcrn, $rcrm, $ro2).0 }>(self.$rfield);
                            }
                        } )*
                    } )*
                }
            }

            /// Reads the guest state back from `f` (EL2 controls are not read), and
            /// stops the timers.
            #[cfg(test)]
            #[inline(always)]
            pub(crate) fn save<F: RegFile>(&mut self, has: FeatureSet, f: &mut F) {
                self.save_sel::<{ sel::ALL }, F>(has, f)
            }

            /// Reads back the saved entries ([`Kind::saves`]) of the kinds selected by
            /// `SEL`, and stops the timers among them. Out of line, as `load_sel` (for
            /// `stp`).
            #[inline(never)]
            pub(crate) fn save_sel<const SEL: u8, F: RegFile>(&mut self, has: FeatureSet, f: &mut F) {
                $( if Kind::loads_any(&[$(Kind::$kind),*], SEL) && Gate::on($gate, has) {
                    save_pairs!(self, f, SEL; $( [$(#[$attr])*] $kind $field ($o0, $o1, $crn, $crm, $o2); )*);
                } )*
                if has.0 & RARE.0 != 0 && Kind::loads_any(&[$($(Kind::$rkind),*),*], SEL) {
                    $( if Gate::on($rgate, has) {
                        $( $(#[$rattr])* {
                            if Kind::$rkind.saves() && Kind::$rkind.loads(SEL) {
                                self.$rfield = f.read::<{ SysRegAddr::new($ro0, $ro1, $rcrn, $rcrm, $ro2).0 }>();
                                if Kind::$rkind.stops() {
                                    f.write::<{ SysRegAddr::new($ro0, $ro1, $rcrn, $rcrm, $ro2).0 }>(0);
                                }
                            }
                        } )*
                    } )*
                }
            }

            /// The stored value of the switch-list register `addr` (any host), for
            /// [`crate::reg`].
            pub(crate) const fn by_addr(&self, addr: SysRegAddr) -> Option<u64> {
                $( $(
                    if addr.0 == SysRegAddr::new($o0, $o1, $crn, $crm, $o2).0 {
                        return Some(self.$field);
                    }
                )* )*
                $( $(
                    if addr.0 == SysRegAddr::new($ro0, $ro1, $rcrn, $rcrm, $ro2).0 {
                        return Some(self.$rfield);
                    }
                )* )*
                None
            }

            /// The stored copy of the switch-list register `addr`, for [`crate::reg`].
            pub(crate) fn by_addr_mut(&mut self, addr: SysRegAddr) -> Option<&mut u64> {
                $( $(
                    if addr.0 == SysRegAddr::new($o0, $o1, $crn, $crm, $o2).0 {
                        return Some(&mut self.$field);
                    }
                )* )*
                $( $(
                    if addr.0 == SysRegAddr::new($ro0, $ro1, $rcrn, $rcrm, $ro2).0 {
                        return Some(&mut self.$rfield);
                    }
                )* )*
                None
            }

            /// Reads the switch-list register `addr` from `f` (the core's registers
            /// while the vCPU is bound); `None` if `addr` is not in the list. The caller
            /// checks that the register exists on the host ([`Gate::on`]).
            pub(crate) fn read_live<F: RegFile>(addr: SysRegAddr, f: &mut F) -> Option<u64> {
                $( $(
                    if addr.0 == SysRegAddr::new($o0, $o1, $crn, $crm, $o2).0 {
                        return Some(f.read::<{ SysRegAddr::new($o0, $o1, $crn, $crm, $o2).0 }>());
                    }
                )* )*
                $( $(
                    if addr.0 == SysRegAddr::new($ro0, $ro1, $rcrn, $rcrm, $ro2).0 {
                        return Some(f.read::<{ SysRegAddr::new($ro0, $ro1, $rcrn, $rcrm, $ro2).0 }>());
                    }
                )* )*
                None
            }

            /// Writes the switch-list register `addr` in `f`; `false` if `addr` is not in
            /// the list. As [`Self::read_live`].
            pub(crate) fn write_live<F: RegFile>(addr: SysRegAddr, v: u64, f: &mut F) -> bool {
                $( $(
                    if addr.0 == SysRegAddr::new($o0, $o1, $crn, $crm, $o2).0 {
                        f.write::<{ SysRegAddr::new($o0, $o1, $crn, $crm, $o2).0 }>(v);
                        return true;
                    }
                )* )*
                $( $(
                    if addr.0 == SysRegAddr::new($ro0, $ro1, $rcrn, $rcrm, $ro2).0 {
                        f.write::<{ SysRegAddr::new($ro0, $ro1, $rcrn, $rcrm, $ro2).0 }>(v);
                        return true;
                    }
                )* )*
                false
            }

            /// The per-VM EL2 controls ([`Kind::Ctl`]), in the list's order (0 where the
            /// host lacks the register): what a core's control key stands for.
            #[cfg(test)]
            pub(crate) fn vm_controls(&self) -> VmControls {
                let mut a = [0u64; VM_CONTROLS];
                self.store_vm_controls(&mut a);
                a
            }

            /// Copies the per-VM EL2 controls into `a` ([`Self::vm_controls`]' order).
            pub(crate) fn store_vm_controls(&self, a: &mut VmControls) {
                let mut i = 0;
                $( $( if matches!(Kind::$kind, Kind::Ctl) {
                    if let Some(s) = a.get_mut(i) {
                        *s = self.$field;
                    }
                    i += 1;
                } )* )*
                $( $( if matches!(Kind::$rkind, Kind::Ctl) {
                    if let Some(s) = a.get_mut(i) {
                        *s = self.$rfield;
                    }
                    i += 1;
                } )* )*
                let _ = i;
            }

            /// Whether `a` holds exactly this vCPU's per-VM EL2 controls.
            pub(crate) fn vm_controls_match(&self, a: &VmControls) -> bool {
                let mut i = 0;
                $( $( if matches!(Kind::$kind, Kind::Ctl) {
                    if a.get(i) != Some(&self.$field) {
                        return false;
                    }
                    i += 1;
                } )* )*
                $( $( if matches!(Kind::$rkind, Kind::Ctl) {
                    if a.get(i) != Some(&self.$rfield) {
                        return false;
                    }
                    i += 1;
                } )* )*
                let _ = i;
                true
            }

            /// A copy with only the EL2 controls ([`Kind::is_control`]) kept, everything
            /// else 0.
            pub const fn el2_controls(&self) -> Self {
                Self {
                    $( $( $field: if Kind::$kind.is_control() { self.$field } else { 0 }, )* )*
                    $( $( $rfield: if Kind::$rkind.is_control() { self.$rfield } else { 0 }, )* )*
                }
            }
        }
    };
}

// The switch list. Order matters where noted:
// * EL2 controls first: HCR_EL2 (stage 2 on, traps) and VTTBR/VTCR select the VM for
//   the TLB maintenance that may follow the load; CPTR/MDCR/HCRX and (after `rare:`)
//   the fine-grained traps and MPAM2_EL2 must be in place before the guest runs (they
//   are, since ERET comes after it all).
// * A timer's compare value before its control, so that enabling it never compares
//   against the previous vCPU's value; at unbind the control is cleared after saving.
// * SCTLR_EL1 before TTBRx/TCR_EL1 would matter on cores with speculative-AT errata
//   (KVM orders them); none of the supported cores has them, and the MMU state is only
//   used once the guest runs.
// The debug registers (`MDSCR_EL1` among them) are not here: `crate::debug` switches
// them lazily. `ACTLR_EL1` is not here either: it is emulated (`HCR_EL2.TACR`), and
// the core's own IMPLEMENTATION DEFINED value is left alone.
switch_list! {
    [Gate::Always] {
        Entry hcr_el2 "HCR_EL2" (3, 4, 1, 1, 0);
        Ctl vtcr_el2 "VTCR_EL2" (3, 4, 2, 1, 2);
        Ctl vttbr_el2 "VTTBR_EL2" (3, 4, 2, 1, 0);
        VcpuCtl vmpidr_el2 "VMPIDR_EL2" (3, 4, 0, 0, 5);
        Ctl vpidr_el2 "VPIDR_EL2" (3, 4, 0, 0, 0);
        Ctl cptr_el2 "CPTR_EL2" (3, 4, 1, 1, 2);
        Entry mdcr_el2 "MDCR_EL2" (3, 4, 1, 1, 1);
        Ctl cnthctl_el2 "CNTHCTL_EL2" (3, 4, 14, 1, 0);
        Ctl cntvoff_el2 "CNTVOFF_EL2" (3, 4, 14, 0, 3);
    }
    [Gate::Feat(Feature::Hcx)] {
        Ctl hcrx_el2 "HCRX_EL2" (3, 4, 1, 2, 2);
    }
    [Gate::Always] {
        Rw sctlr_el1 "SCTLR_EL1" (3, 0, 1, 0, 0);
        Rw cpacr_el1 "CPACR_EL1" (3, 0, 1, 0, 2);
        Rw ttbr0_el1 "TTBR0_EL1" (3, 0, 2, 0, 0);
        Rw ttbr1_el1 "TTBR1_EL1" (3, 0, 2, 0, 1);
        Rw tcr_el1 "TCR_EL1" (3, 0, 2, 0, 2);
        Rw mair_el1 "MAIR_EL1" (3, 0, 10, 2, 0);
        Rw amair_el1 "AMAIR_EL1" (3, 0, 10, 3, 0);
        Rw vbar_el1 "VBAR_EL1" (3, 0, 12, 0, 0);
        Rw contextidr_el1 "CONTEXTIDR_EL1" (3, 0, 13, 0, 1);
        Rw tpidr_el0 "TPIDR_EL0" (3, 3, 13, 0, 2);
        // The mutation-test build leaves TPIDR_EL1 out of the switch (isolation fails).
        #[cfg(not(arm_vcpu_mutate = "skip-tpidr"))]
        Rw tpidr_el1 "TPIDR_EL1" (3, 0, 13, 0, 4);
        Rw tpidrro_el0 "TPIDRRO_EL0" (3, 3, 13, 0, 3);
        Rw sp_el0 "SP_EL0" (3, 0, 4, 1, 0);
        Rw sp_el1 "SP_EL1" (3, 4, 4, 1, 0);
        Rw elr_el1 "ELR_EL1" (3, 0, 4, 0, 1);
        Rw spsr_el1 "SPSR_EL1" (3, 0, 4, 0, 0);
        Rw esr_el1 "ESR_EL1" (3, 0, 5, 2, 0);
        Rw far_el1 "FAR_EL1" (3, 0, 6, 0, 0);
        Rw par_el1 "PAR_EL1" (3, 0, 7, 4, 0);
        Rw afsr0_el1 "AFSR0_EL1" (3, 0, 5, 1, 0);
        Rw afsr1_el1 "AFSR1_EL1" (3, 0, 5, 1, 1);
        Rw csselr_el1 "CSSELR_EL1" (3, 2, 0, 0, 0);
        Rw cntkctl_el1 "CNTKCTL_EL1" (3, 0, 14, 1, 0);
        Rw cntv_cval_el0 "CNTV_CVAL_EL0" (3, 3, 14, 3, 2);
        TimerCtl cntv_ctl_el0 "CNTV_CTL_EL0" (3, 3, 14, 3, 1);
        // The EL1 physical timer: live only with `passthrough_timer` (trapped and
        // emulated otherwise, when these hold whatever the last passthrough left).
        Rw cntp_cval_el0 "CNTP_CVAL_EL0" (3, 3, 14, 2, 2);
        TimerCtl cntp_ctl_el0 "CNTP_CTL_EL0" (3, 3, 14, 2, 1);
    }
    [Gate::Feat(Feature::Pauth)] {
        Lazy apia_lo "APIAKeyLo_EL1" (3, 0, 2, 1, 0);
        Lazy apia_hi "APIAKeyHi_EL1" (3, 0, 2, 1, 1);
        Lazy apib_lo "APIBKeyLo_EL1" (3, 0, 2, 1, 2);
        Lazy apib_hi "APIBKeyHi_EL1" (3, 0, 2, 1, 3);
        Lazy apda_lo "APDAKeyLo_EL1" (3, 0, 2, 2, 0);
        Lazy apda_hi "APDAKeyHi_EL1" (3, 0, 2, 2, 1);
        Lazy apdb_lo "APDBKeyLo_EL1" (3, 0, 2, 2, 2);
        Lazy apdb_hi "APDBKeyHi_EL1" (3, 0, 2, 2, 3);
        Lazy apga_lo "APGAKeyLo_EL1" (3, 0, 2, 3, 0);
        Lazy apga_hi "APGAKeyHi_EL1" (3, 0, 2, 3, 1);
    }
    // SME is hidden and trapped (CPTR_EL2.TSM), but CPTR_EL2.TSM traps neither of
    // these two: without FEAT_FGT (QEMU's -cpu max) the guest reaches them.
    [Gate::Feat(Feature::Sme)] {
        // The mutation-test build leaves TPIDR2_EL0 out (the two-VM sweep fails).
        #[cfg(not(arm_vcpu_mutate = "skip-tpidr2"))]
        Rw tpidr2_el0 "TPIDR2_EL0" (3, 3, 13, 0, 5);
        Rw smpri_el1 "SMPRI_EL1" (3, 0, 1, 2, 4);
    }
    // RAS: with HCR_EL2.AMO an EL1 access to DISR_EL1 reaches VDISR_EL2; VSESR_EL2 is
    // the syndrome of a pending virtual SError (HCR_EL2.VSE, saved with HCR_EL2).
    [Gate::Feat(Feature::Ras)] {
        Rw vdisr_el2 "VDISR_EL2" (3, 4, 12, 1, 1);
        Rw vsesr_el2 "VSESR_EL2" (3, 4, 5, 2, 3);
    }
    rare:
    // The fine-grained traps and MPAM2_EL2: EL2 controls, in place before the ERET.
    [Gate::Feat(Feature::Fgt)] {
        Ctl hfgrtr_el2 "HFGRTR_EL2" (3, 4, 1, 1, 4);
        Ctl hfgwtr_el2 "HFGWTR_EL2" (3, 4, 1, 1, 5);
        Ctl hfgitr_el2 "HFGITR_EL2" (3, 4, 1, 1, 6);
        Ctl hdfgrtr_el2 "HDFGRTR_EL2" (3, 4, 3, 1, 4);
        Ctl hdfgwtr_el2 "HDFGWTR_EL2" (3, 4, 3, 1, 5);
    }
    [Gate::Feat(Feature::Fgt2)] {
        Ctl hfgrtr2_el2 "HFGRTR2_EL2" (3, 4, 3, 1, 2);
        Ctl hfgwtr2_el2 "HFGWTR2_EL2" (3, 4, 3, 1, 3);
        Ctl hfgitr2_el2 "HFGITR2_EL2" (3, 4, 3, 1, 7);
        Ctl hdfgrtr2_el2 "HDFGRTR2_EL2" (3, 4, 3, 1, 0);
        Ctl hdfgwtr2_el2 "HDFGWTR2_EL2" (3, 4, 3, 1, 1);
    }
    [Gate::Feat(Feature::Mpam)] {
        Ctl mpam2_el2 "MPAM2_EL2" (3, 4, 10, 5, 0);
    }
    // Registers of hidden features that only FEAT_FGT traps (trapped too where the
    // host has it): switched so that no value crosses VMs on hosts without it.
    [Gate::Feat(Feature::Ls64Accdata)] {
        Rw accdata_el1 "ACCDATA_EL1" (3, 0, 13, 0, 5);
    }
    [Gate::Feat(Feature::Gcs)] {
        Rw gcscr_el1 "GCSCR_EL1" (3, 0, 2, 5, 0);
        Rw gcspr_el1 "GCSPR_EL1" (3, 0, 2, 5, 1);
        Rw gcscre0_el1 "GCSCRE0_EL1" (3, 0, 2, 5, 2);
        Rw gcspr_el0 "GCSPR_EL0" (3, 3, 2, 5, 1);
    }
    [Gate::Feat(Feature::S1pie)] {
        Rw pire0_el1 "PIRE0_EL1" (3, 0, 10, 2, 2);
        Rw pir_el1 "PIR_EL1" (3, 0, 10, 2, 3);
    }
    [Gate::Feat(Feature::S1poe)] {
        Rw por_el1 "POR_EL1" (3, 0, 10, 2, 4);
        Rw por_el0 "POR_EL0" (3, 3, 10, 2, 4);
    }
    [Gate::Feat(Feature::Aie)] {
        Rw mair2_el1 "MAIR2_EL1" (3, 0, 10, 2, 1);
        Rw amair2_el1 "AMAIR2_EL1" (3, 0, 10, 3, 1);
    }
    [Gate::Feat(Feature::The)] {
        Rw rcwsmask_el1 "RCWSMASK_EL1" (3, 0, 13, 0, 3);
        Rw rcwmask_el1 "RCWMASK_EL1" (3, 0, 13, 0, 6);
    }
    [Gate::Feat(Feature::Pfar)] {
        Rw pfar_el1 "PFAR_EL1" (3, 0, 6, 0, 5);
    }
}

/// `SCTLR_EL1` at reset as a guest expects it: MMU and caches off, RES1 bits
/// (29, 28, 23, 22, 20, 11) set.
pub const SCTLR_EL1_RESET: u64 = 0x30d0_0800;

/// FP/SIMD state: V0–V31, FPCR, FPSR.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FpSimdState {
    /// V0..V31 as 128-bit values.
    pub v: [u128; 32],
    /// `FPCR`.
    pub fpcr: u64,
    /// `FPSR`.
    pub fpsr: u64,
}

/// Offsets of [`FpSimdState`] for the assembly.
pub(crate) mod fp_offsets {
    use super::*;
    /// Offset of `FPCR` (followed by `FPSR`).
    pub const FPCR: usize = offset_of!(FpSimdState, fpcr);
    const _: () = assert!(offset_of!(FpSimdState, v) == 0);
    const _: () = assert!(offset_of!(FpSimdState, fpsr) == FPCR + 8);
}
