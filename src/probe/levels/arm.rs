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

/// Ends every slot: back to `ran`, whose address r8 holds.
const BACK: &[u32] = &[
    0xe1a0_f008, // mov pc, r8
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
    // rt_sigaction 174, exit_group 248. A signal handler is entered with r0-r2, lr and sp
    // changed. r4 counts the checks, r5 holds the mask, r8 the address of `ran`, r9 the stack
    // pointer; [sp] is the zeroed rlimit, [sp+16] the sigaction (handler, flags, then zeros).
    let words: [u32; 47] = [
        0xe24d_d030, // 00: sub sp, sp, #48
        0xe3a0_0000, // 04: mov r0, #0  ; ourselves
        0xe58d_0000, // 08: str r0, [sp]
        0xe58d_0004, // 0c: str r0, [sp, #4]
        0xe58d_0008, // 10: str r0, [sp, #8]
        0xe58d_000c, // 14: str r0, [sp, #12]
        0xe3a0_1004, // 18: mov r1, #4  ; RLIMIT_CORE
        0xe1a0_200d, // 1c: mov r2, sp
        0xe3a0_3000, // 20: mov r3, #0
        0xe3a0_7e17, // 24: mov r7, #368
        0xe287_7001, // 28: add r7, r7, #1  ; 369 has no rotated-immediate form
        0xef00_0000, // 2c: svc #0  ; prlimit64(0, CORE, {0, 0}, 0)
        0xe28f_6070, // 30: adr r6, handler (0xa8)
        0xe58d_6010, // 34: str r6, [sp, #16]  ; sa_handler
        0xe3a0_6101, // 38: mov r6, #0x40000000  ; SA_NODEFER
        0xe58d_6014, // 3c: str r6, [sp, #20]  ; sa_flags
        0xe58d_0018, // 40: str r0, [sp, #24]
        0xe58d_001c, // 44: str r0, [sp, #28]
        0xe58d_0020, // 48: str r0, [sp, #32]
        0xe3a0_4004, // 4c: mov r4, #4  ; SIGILL
        // 50 signals:
        0xe1a0_0004, // 50: mov r0, r4
        0xe28d_1010, // 54: add r1, sp, #16
        0xe3a0_2000, // 58: mov r2, #0
        0xe3a0_3008, // 5c: mov r3, #8
        0xe3a0_70ae, // 60: mov r7, #174
        0xef00_0000, // 64: svc #0  ; rt_sigaction(sig, &act, 0, 8)
        0xe284_4001, // 68: add r4, r4, #1
        0xe354_000c, // 6c: cmp r4, #12
        0x1aff_fff6, // 70: bne signals (0x50)  ; through SIGSEGV
        0xe3a0_4000, // 74: mov r4, #0
        0xe3a0_5000, // 78: mov r5, #0
        0xe1a0_900d, // 7c: mov r9, sp  ; the stack pointer the handler restores
        0xe28f_8010, // 80: adr r8, ran (0x98)
        // 84 loop:
        0xe354_0000 | n, // 84: cmp r4, #n
        0x0a00_0008,     // 88: beq done (0xb0)
        0xe28f_0028,     // 8c: adr r0, slots (0xbc)
        0xe080_0304,     // 90: add r0, r0, r4, lsl #6  ; + i * SLOT
        0xe1a0_f000,     // 94: mov pc, r0
        // 98 ran:
        0xe3a0_6001, // 98: mov r6, #1
        0xe185_5416, // 9c: orr r5, r5, r6, lsl r4
        // a0 next:
        0xe284_4001, // a0: add r4, r4, #1
        0xeaff_fff6, // a4: b loop (0x84)
        // a8 handler:
        0xe1a0_d009, // a8: mov sp, r9  ; drop the signal frame
        0xeaff_fffb, // ac: b next (0xa0)
        // b0 done:
        0xe285_0064, // b0: add r0, r5, #100
        0xe3a0_70f8, // b4: mov r7, #248
        0xef00_0000, // b8: svc #0  ; exit_group(100 + mask)
                     // bc slots:
    ];
    let refs: Vec<&[u8]> = checks.iter().map(Vec::as_slice).collect();
    let mut code = le_words(&words);
    // Filler: mov r0, r0, the ARMv5 NOP.
    code.extend(slots(&refs, &le_words(&[0xe1a0_0000]), &le_words(BACK)));
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
