//! arm64 levels: Armv8.0 (baseline, proven by the program itself) to Armv8.5, Armv9.0, and
//! the SVE and SVE2 features that tell QEMU's models apart.
//!
//! Checks (bit: instructions, and the Arm ARM feature and version that make them mandatory):
//! - 0 `v8.1`: LDADD (FEAT_LSE, Armv8.1).
//! - 1 `v8.2`: DC CVAP (FEAT_DPB, Armv8.2).
//! - 2 `v8.3`: PACGA (FEAT_PAuth; not one of the hint-space PAC forms, which older CPUs run
//!   as NOPs), FJCVTZS (FEAT_JSCVT), LDAPR (FEAT_LRCPC), all Armv8.3.
//! - 3 `v8.4`: CFINV (FEAT_FlagM), LDAPUR (FEAT_LRCPC2), Armv8.4.
//! - 4 `v8.5`: AXFLAG (FEAT_FlagM2), FRINT32Z (FEAT_FRINTTS), SB (FEAT_SB), Armv8.5.
//! - 5 `sve`: RDVL (FEAT_SVE; optional from Armv8.2).
//! - 6 `sve2`: EOR3 on Z registers (FEAT_SVE2, mandatory in Armv9.0, which is Armv8.5 plus
//!   SVE2 for what user code sees).
//!
//! Encodings from aarch64-linux-gnu-as (binutils 2.40, `-march=armv9-a`).
//!
//! Measured with QEMU 7.2 (`qemu-aarch64-static -cpu MODEL PROBE; echo $?`, as
//! `level_probe_under_qemu_7_2` does):
//! - `cortex-a35`, `cortex-a53`, `cortex-a57`, `cortex-a72`: v8.0, no check runs.
//! - `cortex-a76`, `neoverse-n1`: v8.1 (checks: v8.1).
//! - `a64fx`: v8.1 (checks: v8.1, sve).
//! - `max` (user mode's default): v8.1 (checks: v8.1, v8.3, v8.4, v8.5, sve, sve2).
//!
//! QEMU 7.2 user mode has no DC CVAP on any model (SIGILL even with `max`, while DC CVAC
//! runs): it provides that register operation for system emulation only. DC CVAP is the one
//! instruction Armv8.2 makes mandatory that user code can run, so no QEMU 7.2 model proves
//! v8.2 or anything above it, although `max` runs every later check.

use super::{Family, Level, le_words, slots};
use crate::arch::Arch;

pub const V8_0: &str = "v8.0";
pub const V8_1: &str = "v8.1";
pub const V8_2: &str = "v8.2";
pub const V8_3: &str = "v8.3";
pub const V8_4: &str = "v8.4";
pub const V8_5: &str = "v8.5";
pub const V9_0: &str = "v9.0";
pub const SVE: &str = "sve";
pub const SVE2: &str = "sve2";

pub static FAMILY: Family = Family {
    arch: "arm64",
    checks: &[V8_1, V8_2, V8_3, V8_4, V8_5, SVE, SVE2],
    levels: &[
        Level {
            name: V8_0,
            needs: 0,
            variant: None,
            qemu_cpu: Some("cortex-a57"),
        },
        Level {
            name: V8_1,
            needs: 0b1,
            variant: Some("v8.1"),
            qemu_cpu: Some("cortex-a76"),
        },
        Level {
            name: V8_2,
            needs: 0b11,
            variant: Some("v8.2"),
            qemu_cpu: None,
        },
        Level {
            name: V8_3,
            needs: 0b111,
            variant: Some("v8.3"),
            qemu_cpu: None,
        },
        Level {
            name: V8_4,
            needs: 0b1111,
            variant: Some("v8.4"),
            qemu_cpu: None,
        },
        Level {
            name: V8_5,
            needs: 0b1_1111,
            variant: Some("v8.5"),
            qemu_cpu: None,
        },
        Level {
            name: V9_0,
            needs: 0b111_1111,
            variant: Some("v9"),
            qemu_cpu: None,
        },
    ],
};

const CHECKS: [&[u32]; 7] = [
    &[
        0xb820_03e1, // ldadd    w0, w1, [sp]
    ],
    &[
        0x9100_03e2, // mov      x2, sp  ; DC CVAP needs a mapped address
        0xd50b_7c22, // dc       cvap, x2
    ],
    &[
        0x9ac1_3000, // pacga    x0, x0, x1
        0x1e7e_0000, // fjcvtzs  w0, d0
        0xb8bf_c3e0, // ldapr    w0, [sp]
    ],
    &[
        0xd500_401f, // cfinv
        0x9940_03e0, // ldapur   w0, [sp]
    ],
    &[
        0xd500_405f, // axflag
        0x1e68_4000, // frint32z d0, d0
        0xd503_30ff, // sb
    ],
    &[
        0x04bf_5020, // rdvl     x0, #1
    ],
    &[
        0x0421_3840, // eor3     z0.d, z0.d, z1.d, z2.d
    ],
];

/// Ends every slot: back to `ran`, whose address x21 holds.
const BACK: &[u32] = &[
    0xd61f_02a0, // br x21
];

/// The level probe's machine code, for `arch` when it is this family's, to be loaded at
/// `start`.
pub(super) fn code(arch: &Arch, _start: u64) -> Option<Vec<u8>> {
    if arch.name != "arm64" {
        return None;
    }
    let n = CHECKS.len() as u32;
    // Syscalls: number in x8, `svc #0`, every register kept but x0. prlimit64 261,
    // rt_sigaction 134, exit_group 94. A signal handler is entered with x0-x2, x29, x30 and sp
    // changed. x19 counts the checks, x20 holds the mask, x21 the address of `ran`, x22 the
    // stack pointer; [sp] is the zeroed rlimit, [sp+16] the sigaction (handler, flags, then
    // zeros).
    let words: [u32; 41] = [
        0xd100_c3ff, // 00: sub sp, sp, #48
        0xa900_7fff, // 04: stp xzr, xzr, [sp]
        0xd280_0000, // 08: mov x0, #0  ; ourselves
        0xd280_0081, // 0c: mov x1, #4  ; RLIMIT_CORE
        0x9100_03e2, // 10: mov x2, sp
        0xd280_0003, // 14: mov x3, #0
        0xd280_20a8, // 18: mov x8, #261
        0xd400_0001, // 1c: svc #0  ; prlimit64(0, CORE, {0, 0}, 0)
        0x1000_0389, // 20: adr x9, handler (0x90)
        0xd2a8_000a, // 24: mov x10, #0x40000000  ; SA_NODEFER
        0xa901_2be9, // 28: stp x9, x10, [sp, #16]  ; sa_handler, sa_flags
        0xa902_7fff, // 2c: stp xzr, xzr, [sp, #32]
        0xd280_0093, // 30: mov x19, #4  ; SIGILL
        // 34 signals:
        0xaa13_03e0, // 34: mov x0, x19
        0x9100_43e1, // 38: add x1, sp, #16
        0xd280_0002, // 3c: mov x2, #0
        0xd280_0103, // 40: mov x3, #8
        0xd280_10c8, // 44: mov x8, #134
        0xd400_0001, // 48: svc #0  ; rt_sigaction(sig, &act, 0, 8)
        0x9100_0673, // 4c: add x19, x19, #1
        0xf100_327f, // 50: cmp x19, #12
        0x54ff_ff01, // 54: b.ne signals (0x34)  ; through SIGSEGV
        0xd280_0013, // 58: mov x19, #0
        0xd280_0014, // 5c: mov x20, #0
        0x9100_03f6, // 60: mov x22, sp  ; the stack pointer the handler restores
        0x1000_00d5, // 64: adr x21, ran (0x7c)
        // 68 loop:
        0xf100_027f | n << 10, // 68: cmp x19, #n
        0x5400_0160,           // 6c: b.eq done (0x98)
        0x1000_01a0,           // 70: adr x0, slots (0xa4)
        0x8b13_1800,           // 74: add x0, x0, x19, lsl #6  ; + i * SLOT
        0xd61f_0000,           // 78: br x0
        // 7c ran:
        0xd280_0029, // 7c: mov x9, #1
        0x9ad3_2129, // 80: lsl x9, x9, x19
        0xaa09_0294, // 84: orr x20, x20, x9
        // 88 next:
        0x9100_0673, // 88: add x19, x19, #1
        0x17ff_fff7, // 8c: b loop (0x68)
        // 90 handler:
        0x9100_02df, // 90: mov sp, x22  ; drop the signal frame
        0x17ff_fffd, // 94: b next (0x88)
        // 98 done:
        0x9101_9280, // 98: add x0, x20, #100
        0xd280_0bc8, // 9c: mov x8, #94
        0xd400_0001, // a0: svc #0  ; exit_group(100 + mask)
                     // a4 slots:
    ];
    let checks: Vec<Vec<u8>> = CHECKS.iter().map(|c| le_words(c)).collect();
    let refs: Vec<&[u8]> = checks.iter().map(Vec::as_slice).collect();
    let mut code = le_words(&words);
    code.extend(slots(&refs, &le_words(&[0xd503_201f]), &le_words(BACK))); // filler: nop
    Some(code)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{arch, under_qemu};
    use super::*;

    #[test]
    fn level_probe_under_qemu_7_2() {
        let a = arch("arm64");
        let cases: &[(Option<&str>, &str, &[&str])] = &[
            (Some("cortex-a53"), V8_0, &[]),
            (Some("cortex-a57"), V8_0, &[]),
            (Some("cortex-a72"), V8_0, &[]),
            (Some("cortex-a76"), V8_1, &[V8_1]),
            (Some("neoverse-n1"), V8_1, &[V8_1]),
            (Some("a64fx"), V8_1, &[V8_1, SVE]),
            (Some("max"), V8_1, &[V8_1, V8_3, V8_4, V8_5, SVE, SVE2]),
            (None, V8_1, &[V8_1, V8_3, V8_4, V8_5, SVE, SVE2]),
        ];
        for (cpu, want, checks) in cases {
            let (levels, ran) = under_qemu(&a, *cpu);
            assert_eq!(levels.last(), Some(want), "-cpu {cpu:?}: {levels:?}");
            assert_eq!(&ran, checks, "-cpu {cpu:?}");
        }
    }
}
