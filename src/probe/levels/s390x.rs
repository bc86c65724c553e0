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

/// Ends every slot: back to `ran`, whose address r10 holds.
const BACK: &[u8] = &[
    0x07, 0xfa, // br %r10
];

/// The level probe's machine code, for `arch` when it is this family's, to be loaded at
/// `start`.
pub(super) fn code(arch: &Arch, _start: u64) -> Option<Vec<u8>> {
    if arch.name != "s390x" {
        return None;
    }
    let n = CHECKS.len() as u8;
    // Syscalls: arguments in r2-r7, result in r2, every other register kept; numbers below
    // 256 ride in `svc` itself, prlimit64 (334) goes in r1 with `svc 0`. rt_sigaction 174,
    // exit_group 248. A signal handler is entered with r2-r6, r14 and r15 changed. r8 counts
    // the checks, r9 holds the mask, r10 the address of `ran`, r11 the stack pointer; 0(r15)
    // is the zeroed rlimit, 16(r15) the sigaction (handler, flags, then zeros).
    let parts: &[&[u8]] = &[
        &[0xa7, 0xfb, 0xff, 0xc0],             // 00: aghi %r15, -64
        &[0xd7, 0x2f, 0xf0, 0x00, 0xf0, 0x00], // 04: xc 0(48,%r15), 0(%r15)
        &[0xa7, 0x29, 0x00, 0x00],             // 0a: lghi %r2, 0  ; ourselves
        &[0xa7, 0x39, 0x00, 0x04],             // 0e: lghi %r3, 4  ; RLIMIT_CORE
        &[0xb9, 0x04, 0x00, 0x4f],             // 12: lgr %r4, %r15
        &[0xa7, 0x59, 0x00, 0x00],             // 16: lghi %r5, 0
        &[0xa7, 0x19, 0x01, 0x4e],             // 1a: lghi %r1, 334
        &[0x0a, 0x00],                         // 1e: svc 0  ; prlimit64(0, CORE, {0, 0}, 0)
        &[0xc0, 0x10, 0x00, 0x00, 0x00, 0x3d], // 20: larl %r1, handler (0x9a)
        &[0xe3, 0x10, 0xf0, 0x10, 0x00, 0x24], // 26: stg %r1, 16(%r15)  ; sa_handler
        &[0xa5, 0x1e, 0x40, 0x00],             // 2c: llilh %r1, 0x4000  ; SA_NODEFER
        &[0xe3, 0x10, 0xf0, 0x18, 0x00, 0x24], // 30: stg %r1, 24(%r15)  ; sa_flags
        &[0xa7, 0x89, 0x00, 0x04],             // 36: lghi %r8, 4  ; SIGILL
        // 3a signals:
        &[0xb9, 0x04, 0x00, 0x28],             // 3a: lgr %r2, %r8
        &[0x41, 0x30, 0xf0, 0x10],             // 3e: la %r3, 16(%r15)
        &[0xa7, 0x49, 0x00, 0x00],             // 42: lghi %r4, 0
        &[0xa7, 0x59, 0x00, 0x08],             // 46: lghi %r5, 8
        &[0x0a, 0xae],                         // 4a: svc 174  ; rt_sigaction(sig, &act, 0, 8)
        &[0xa7, 0x8b, 0x00, 0x01],             // 4c: aghi %r8, 1
        &[0xa7, 0x8f, 0x00, 0x0c],             // 50: cghi %r8, 12
        &[0xa7, 0x74, 0xff, 0xf3],             // 54: jne signals (0x3a)  ; through SIGSEGV
        &[0xa7, 0x89, 0x00, 0x00],             // 58: lghi %r8, 0
        &[0xa7, 0x99, 0x00, 0x00],             // 5c: lghi %r9, 0
        &[0xb9, 0x04, 0x00, 0xbf], // 60: lgr %r11, %r15  ; the stack pointer the handler restores
        &[0xc0, 0xa0, 0x00, 0x00, 0x00, 0x10], // 64: larl %r10, ran (0x84)
        // 6a loop:
        &[0xa7, 0x8f, 0x00, n],                // 6a: cghi %r8, n
        &[0xa7, 0x84, 0x00, 0x1a],             // 6e: je done (0xa2)
        &[0xc0, 0x10, 0x00, 0x00, 0x00, 0x1b], // 72: larl %r1, slots (0xa8)
        &[0xeb, 0x38, 0x00, 0x06, 0x00, 0x0d], // 78: sllg %r3, %r8, 6  ; i * SLOT
        &[0xb9, 0x08, 0x00, 0x13],             // 7e: agr %r1, %r3
        &[0x07, 0xf1],                         // 82: br %r1
        // 84 ran:
        &[0xa7, 0x09, 0x00, 0x01],             // 84: lghi %r0, 1
        &[0xeb, 0x00, 0x80, 0x00, 0x00, 0x0d], // 88: sllg %r0, %r0, 0(%r8)
        &[0xb9, 0x81, 0x00, 0x90],             // 8e: ogr %r9, %r0
        // 92 next:
        &[0xa7, 0x8b, 0x00, 0x01], // 92: aghi %r8, 1
        &[0xa7, 0xf4, 0xff, 0xea], // 96: j loop (0x6a)
        // 9a handler:
        &[0xb9, 0x04, 0x00, 0xfb], // 9a: lgr %r15, %r11  ; drop the signal frame
        &[0xa7, 0xf4, 0xff, 0xfa], // 9e: j next (0x92)
        // a2 done:
        &[0x41, 0x20, 0x90, 0x64], // a2: la %r2, 100(%r9)
        &[0x0a, 0xf8],             // a6: svc 248  ; exit_group(100 + mask)
                                   // a8 slots:
    ];
    let mut code = parts.concat();
    debug_assert_eq!(code.len(), 0xa8);
    code.extend(slots(&CHECKS, &[0x07, 0x00], BACK)); // filler: nopr
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
