//! s390x levels: z13 (the vector facility, what current distributions build for) to z16.
//!
//! Checks (bit: instructions, and the facility of the z/Architecture Principles of Operation
//! that introduced them, with the machine that brought it):
//! - 0 `z13`: VAB (vector facility for z/Architecture, 129; z13). The program itself needs
//!   only z900 instructions, so z13 has a check of its own.
//! - 1 `z14`: VNX (vector-enhancements facility 1, 135), MGRK (miscellaneous-instruction-
//!   extensions facility 2, 58).
//! - 2 `z15`: NCGRK (miscellaneous-instruction-extensions facility 3, 61), VSLD
//!   (vector-enhancements facility 2, 148).
//! - 3 `z16`: VCLFNH (neural-network-processing-assist facility, 165), the z16 addition to
//!   problem state that does not need a decimal or crypto coprocessor.
//!
//! Encodings from s390x-linux-gnu-as (binutils 2.40, `-march=arch14`).
//!
//! Measured with QEMU 7.2 (`qemu-s390x-static -cpu MODEL PROBE; echo $?`, as
//! `level_probe_under_qemu_7_2` does):
//! - `qemu` (user mode's default), `max`: z15.
//! - `qemu,vx=off`, `z900-base`: no level (no vector registers).
//! - `z13`, `z14`, `gen15a` and their `-base` forms do not start under TCG (exit 1: "Some
//!   features requested in the CPU model are not available", crypto and DFP subfunctions);
//!   `gen16a` neither ("Selected CPU generation is too new"). With every feature it names
//!   switched off, `z13`, `z14` and `gen15a` start and report z15 all the same.
//! - Switching facilities off (`qemu,vxeh=off,vxeh2=off,minste2=off,minste3=off`) changes
//!   nothing either: TCG user mode executes these instructions whatever the model says.
//!
//! So QEMU 7.2 runs z15 or nothing: it cannot be held at z13 or z14, and it reaches no z16,
//! since it implements neither NNPA nor the vector-packed-decimal-enhancement facility 2.

use super::{Family, Level, slots};
use crate::arch::Arch;

pub const Z13: &str = "z13";
pub const Z14: &str = "z14";
pub const Z15: &str = "z15";
pub const Z16: &str = "z16";

pub static FAMILY: Family = Family {
    arch: "s390x",
    checks: &[Z13, Z14, Z15, Z16],
    levels: &[
        Level {
            name: Z13,
            needs: 0b0001,
            variant: None,
            qemu_cpu: Some("qemu"),
        },
        Level {
            name: Z14,
            needs: 0b0011,
            variant: None,
            qemu_cpu: Some("qemu"),
        },
        Level {
            name: Z15,
            needs: 0b0111,
            variant: None,
            qemu_cpu: Some("qemu"),
        },
        Level {
            name: Z16,
            needs: 0b1111,
            variant: None,
            qemu_cpu: None,
        },
    ],
};

const CHECKS: [&[u8]; 4] = [
    &[
        0xe7, 0x00, 0x00, 0x00, 0x00, 0xf3, // vab    %v0, %v0, %v0
    ],
    &[
        0xe7, 0x00, 0x00, 0x00, 0x00, 0x6c, // vnx    %v0, %v0, %v0
        0xb9, 0xec, 0x40, 0x23, // mgrk   %r2, %r3, %r4
    ],
    &[
        0xb9, 0xe5, 0x00, 0x00, // ncgrk  %r0, %r0, %r0
        0xe7, 0x00, 0x00, 0x01, 0x00, 0x86, // vsld   %v0, %v0, %v0, 1
    ],
    &[
        0xe6, 0x00, 0x00, 0x00, 0x20, 0x56, // vclfnh %v0, %v0, 2, 0
    ],
];

/// Ends every slot.
const EXIT0: &[u8] = &[
    0xa7, 0x29, 0x00, 0x00, // lghi %r2, 0
    0x0a, 0xf8, // svc  248  ; exit_group(0)
];

/// The level probe's machine code, for `arch` when it is this family's, to be loaded at
/// `start`.
pub(super) fn code(arch: &Arch, _start: u64) -> Option<Vec<u8>> {
    if arch.name != "s390x" {
        return None;
    }
    let n = CHECKS.len() as u8;
    // Syscalls: arguments in r2-r7, result in r2, every other register kept; numbers below
    // 256 ride in `svc` itself, prlimit64 (334) goes in r1 with `svc 0`. fork 2, wait4 114,
    // close 6, exit_group 248. r8 counts the checks, r9 holds the mask; 0(r15) is the zeroed
    // rlimit, 16(r15) the wait status.
    let parts: &[&[u8]] = &[
        &[0xa7, 0xfb, 0xff, 0xc0],             // 00: aghi  %r15, -64
        &[0xd7, 0x0f, 0xf0, 0x00, 0xf0, 0x00], // 04: xc    0(16,%r15), 0(%r15)
        &[0xa7, 0x29, 0x00, 0x00],             // 0a: lghi  %r2, 0  ; ourselves
        &[0xa7, 0x39, 0x00, 0x04],             // 0e: lghi  %r3, 4  ; RLIMIT_CORE
        &[0xb9, 0x04, 0x00, 0x4f],             // 12: lgr   %r4, %r15
        &[0xa7, 0x59, 0x00, 0x00],             // 16: lghi  %r5, 0
        &[0xa7, 0x19, 0x01, 0x4e],             // 1a: lghi  %r1, 334
        &[0x0a, 0x00],                         // 1e: svc   0  ; prlimit64(0, CORE, {0, 0}, 0)
        &[0xa7, 0x89, 0x00, 0x00],             // 20: lghi  %r8, 0
        &[0xa7, 0x99, 0x00, 0x00],             // 24: lghi  %r9, 0
        // 28 loop:
        &[0xa7, 0x8f, 0x00, n],                // 28: cghi  %r8, n
        &[0xa7, 0x84, 0x00, 0x22],             // 2c: je    done (0x70)
        &[0x0a, 0x02],                         // 30: svc   2  ; fork()
        &[0xb9, 0x02, 0x00, 0x22],             // 32: ltgr  %r2, %r2
        &[0xa7, 0x84, 0x00, 0x20],             // 36: je    child (0x76)
        &[0xa7, 0x09, 0x00, 0x01],             // 3a: lghi  %r0, 1
        &[0x50, 0x00, 0xf0, 0x10], // 3e: st    %r0, 16(%r15)  ; "failed" unless wait4 says otherwise
        &[0x41, 0x30, 0xf0, 0x10], // 42: la    %r3, 16(%r15)
        &[0xa7, 0x49, 0x00, 0x00], // 46: lghi  %r4, 0
        &[0xa7, 0x59, 0x00, 0x00], // 4a: lghi  %r5, 0
        &[0x0a, 0x72],             // 4e: svc   114  ; wait4(pid, &status, 0, 0)
        &[0x58, 0x00, 0xf0, 0x10], // 50: l     %r0, 16(%r15)
        &[0x12, 0x00],             // 54: ltr   %r0, %r0
        &[0xa7, 0x74, 0x00, 0x09], // 56: jne   next (0x68)
        &[0xa7, 0x09, 0x00, 0x01], // 5a: lghi  %r0, 1
        &[0xeb, 0x00, 0x80, 0x00, 0x00, 0x0d], // 5e: sllg  %r0, %r0, 0(%r8)
        &[0xb9, 0x81, 0x00, 0x90], // 64: ogr   %r9, %r0
        // 68 next:
        &[0xa7, 0x8b, 0x00, 0x01], // 68: aghi  %r8, 1
        &[0xa7, 0xf4, 0xff, 0xde], // 6c: j     loop (0x28)
        // 70 done:
        &[0x41, 0x20, 0x90, 0x64], // 70: la    %r2, 100(%r9)
        &[0x0a, 0xf8],             // 74: svc   248  ; exit_group(100 + mask)
        // 76 child:
        &[0xa7, 0x29, 0x00, 0x02],             // 76: lghi  %r2, 2
        &[0x0a, 0x06],                         // 7a: svc   6  ; close(2)
        &[0xc0, 0x10, 0x00, 0x00, 0x00, 0x09], // 7c: larl  %r1, slots (0x8e)
        &[0xeb, 0x38, 0x00, 0x06, 0x00, 0x0d], // 82: sllg  %r3, %r8, 6  ; i * SLOT
        &[0xb9, 0x08, 0x00, 0x13],             // 88: agr   %r1, %r3
        &[0x07, 0xf1],                         // 8c: br    %r1
                                               // 8e slots:
    ];
    let mut code = parts.concat();
    debug_assert_eq!(code.len(), 0x8e);
    code.extend(slots(&CHECKS, &[0x07, 0x00], EXIT0)); // filler: nopr
    Some(code)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{arch, exit_under_qemu, under_qemu};
    use super::*;

    #[test]
    fn level_probe_under_qemu_7_2() {
        let a = arch("s390x");
        let cases: &[(Option<&str>, &[&str])] = &[
            (None, &[Z13, Z14, Z15]),
            (Some("qemu"), &[Z13, Z14, Z15]),
            (Some("max"), &[Z13, Z14, Z15]),
            (
                Some("qemu,vxeh=off,vxeh2=off,minste2=off,minste3=off"),
                &[Z13, Z14, Z15],
            ),
            (Some("qemu,vx=off"), &[]),
            (Some("z900-base"), &[]),
        ];
        for (cpu, want) in cases {
            let (levels, _) = under_qemu(&a, *cpu);
            assert_eq!(&levels, want, "-cpu {cpu:?}");
        }
        // QEMU refuses these models under TCG: the probe never runs.
        for cpu in ["z13", "z14", "gen15a", "gen16a"] {
            let code = exit_under_qemu(&a, Some(cpu));
            assert_eq!(code, Some(1), "-cpu {cpu}");
            assert_eq!(FAMILY.decode(1), None);
        }
    }
}
