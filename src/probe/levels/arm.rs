//! 32-bit ARM levels (EABI, little-endian, A32 instructions): architecture versions v5 to v8,
//! as containerd's `linux/arm/v5` .. `linux/arm/v8` name them.
//!
//! Checks (bit: instructions, and the ARM ARM version that introduced them):
//! - 0 `v5`: CLZ (ARMv5T).
//! - 1 `v6`: REV (ARMv6); VADD.F64, VFPv2, since `linux/arm/v6` images are hard-float.
//! - 2 `v7`: DMB (ARMv7, unlike MOVW which ARMv6T2 has too), MOVW, and VMOV.F64 with an
//!   immediate (VFPv3, which armhf needs).
//! - 3 `v8`: LDA (load-acquire, ARMv8 AArch32).
//!
//! The program itself uses ARMv4 instructions only, so it runs to its end on any ARM QEMU
//! emulates. Encodings from llvm-mc-16 (`-triple=armv8a-linux-gnueabi -mattr=+vfp3`).
//!
//! Measured with QEMU 7.2 (`qemu-arm-static -cpu MODEL PROBE; echo $?`, as
//! `level_probe_under_qemu_7_2` does): `ti925t` (ARMv4T): none; `arm926`, `arm1026`: v5;
//! `arm1136`, `arm1176`: v6; `cortex-a7`, `cortex-a8`, `cortex-a9`, `cortex-a15`: v7; `max`
//! (user mode's default): v8.

use super::{Family, Level, le_words, slots};
use crate::arch::Arch;

pub const V5: &str = "v5";
pub const V6: &str = "v6";
pub const V7: &str = "v7";
pub const V8: &str = "v8";

pub static FAMILY: Family = Family {
    arch: "arm",
    checks: &[V5, V6, V7, V8],
    levels: &[
        Level {
            name: V5,
            needs: 0b0001,
            variant: Some("v5"),
            qemu_cpu: Some("arm926"),
        },
        Level {
            name: V6,
            needs: 0b0011,
            variant: Some("v6"),
            qemu_cpu: Some("arm1136"),
        },
        Level {
            name: V7,
            needs: 0b0111,
            variant: Some("v7"),
            qemu_cpu: Some("cortex-a15"),
        },
        Level {
            name: V8,
            needs: 0b1111,
            variant: Some("v8"),
            qemu_cpu: Some("max"),
        },
    ],
};

const CHECK_V5: &[u32] = &[
    0xe16f_0f10, // clz      r0, r0
];
const CHECK_V6: &[u32] = &[
    0xe6bf_0f30, // rev      r0, r0
    0xee30_0b00, // vadd.f64 d0, d0, d0
];
const CHECK_V7: &[u32] = &[
    0xf57f_f05b, // dmb      ish
    0xe300_0000, // movw     r0, #0
    0xeeb7_0b00, // vmov.f64 d0, #1.0
];
const CHECK_V8: &[u32] = &[
    0xe19d_0c9f, // lda      r0, [sp]
];

/// Ends every slot.
const EXIT0: &[u32] = &[
    0xe3a0_0000, // mov r0, #0
    0xe3a0_70f8, // mov r7, #248  ; exit_group
    0xef00_0000, // svc #0
];

/// The level probe's machine code, for `arch` when it is this family's, to be loaded at
/// `start`.
pub(super) fn code(arch: &Arch, _start: u64) -> Option<Vec<u8>> {
    if arch.name != "arm" {
        return None;
    }
    let checks: Vec<Vec<u8>> = [CHECK_V5, CHECK_V6, CHECK_V7, CHECK_V8]
        .iter()
        .map(|c| le_words(c))
        .collect();
    let n = checks.len() as u32;
    // EABI syscalls: number in r7, `svc #0`, every register kept but r0. prlimit64 369,
    // fork 2, wait4 114, close 6, exit_group 248. r4 counts the checks, r5 holds the mask;
    // [sp] is the zeroed rlimit, [sp+16] the wait status.
    let words: [u32; 42] = [
        0xe24d_d020, // 00: sub   sp, sp, #32
        0xe3a0_0000, // 04: mov   r0, #0  ; ourselves
        0xe58d_0000, // 08: str   r0, [sp]
        0xe58d_0004, // 0c: str   r0, [sp, #4]
        0xe58d_0008, // 10: str   r0, [sp, #8]
        0xe58d_000c, // 14: str   r0, [sp, #12]
        0xe3a0_1004, // 18: mov   r1, #4  ; RLIMIT_CORE
        0xe1a0_200d, // 1c: mov   r2, sp
        0xe3a0_3000, // 20: mov   r3, #0
        0xe3a0_7e17, // 24: mov   r7, #368
        0xe287_7001, // 28: add   r7, r7, #1  ; 369 has no rotated-immediate form
        0xef00_0000, // 2c: svc   #0  ; prlimit64(0, CORE, {0, 0}, 0)
        0xe3a0_4000, // 30: mov   r4, #0
        0xe3a0_5000, // 34: mov   r5, #0
        // 38 loop:
        0xe354_0000 | n, // 38: cmp   r4, #n
        0x0a00_0010,     // 3c: beq   done (0x84)
        0xe3a0_7002,     // 40: mov   r7, #2
        0xef00_0000,     // 44: svc   #0  ; fork()
        0xe350_0000,     // 48: cmp   r0, #0
        0x0a00_000f,     // 4c: beq   child (0x90)
        0xe3a0_6001,     // 50: mov   r6, #1
        0xe58d_6010,     // 54: str   r6, [sp, #16]  ; "failed" unless wait4 says otherwise
        0xe28d_1010,     // 58: add   r1, sp, #16
        0xe3a0_2000,     // 5c: mov   r2, #0
        0xe3a0_3000,     // 60: mov   r3, #0
        0xe3a0_7072,     // 64: mov   r7, #114
        0xef00_0000,     // 68: svc   #0  ; wait4(pid, &status, 0, 0)
        0xe59d_6010,     // 6c: ldr   r6, [sp, #16]
        0xe356_0000,     // 70: cmp   r6, #0
        0x03a0_6001,     // 74: moveq r6, #1
        0x0185_5416,     // 78: orreq r5, r5, r6, lsl r4
        0xe284_4001,     // 7c: add   r4, r4, #1
        0xeaff_ffec,     // 80: b     loop (0x38)
        // 84 done:
        0xe285_0064, // 84: add   r0, r5, #100
        0xe3a0_70f8, // 88: mov   r7, #248
        0xef00_0000, // 8c: svc   #0  ; exit_group(100 + mask)
        // 90 child:
        0xe3a0_0002, // 90: mov   r0, #2
        0xe3a0_7006, // 94: mov   r7, #6
        0xef00_0000, // 98: svc   #0  ; close(2)
        0xe28f_0004, // 9c: add   r0, pc, #4  ; adr r0, slots (0xa8)
        0xe080_0304, // a0: add   r0, r0, r4, lsl #6  ; + i * SLOT
        0xe1a0_f000, // a4: mov   pc, r0
                     // a8 slots:
    ];
    let refs: Vec<&[u8]> = checks.iter().map(Vec::as_slice).collect();
    let mut code = le_words(&words);
    // Filler: mov r0, r0, the ARMv5 NOP.
    code.extend(slots(&refs, &le_words(&[0xe1a0_0000]), &le_words(EXIT0)));
    Some(code)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{arch, under_qemu};
    use super::*;

    #[test]
    fn level_probe_under_qemu_7_2() {
        let a = arch("arm");
        let cases: &[(Option<&str>, Option<&str>)] = &[
            (Some("ti925t"), None),
            (Some("arm926"), Some(V5)),
            (Some("arm1136"), Some(V6)),
            (Some("cortex-a8"), Some(V7)),
            (Some("cortex-a15"), Some(V7)),
            (Some("max"), Some(V8)),
            (None, Some(V8)),
        ];
        for (cpu, want) in cases {
            let (levels, _) = under_qemu(&a, *cpu);
            assert_eq!(levels.last(), want.as_ref(), "-cpu {cpu:?}: {levels:?}");
        }
    }
}
