//! Echo probes for ARM: AArch64 (arm64, aarch64_be) and 32-bit ARM (arm, armeb).
//!
//! Both programs walk the same plan: a register points at the argv[1] slot of the initial
//! stack; each pass writes the string there (nothing when the slot is NULL) and a newline,
//! then steps back one slot; after argv[0] it exits with `40 + argc`.
//!
//! Byte order: AArch64 fetches instructions little-endian even on a big-endian kernel, so
//! arm64 and aarch64_be are the same bytes (the loads of argc and argv follow the data
//! endianness by themselves). 32-bit armeb here is BE32, as the table's e_flags say (EABI5
//! without `EF_ARM_BE8`): instruction words big-endian like the data. qemu-armeb takes the
//! instruction byte order from that flag alone: BE8 (flag set, little-endian words) runs too,
//! even with `-cpu arm926`, but words that disagree with the flag crash at the first one.

use crate::arch::{Arch, Endian};
use crate::probe::Code;

pub(super) fn code(arch: &Arch) -> Option<Code> {
    let words = match arch.name.as_str() {
        "arm64" | "aarch64_be" => &AARCH64[..],
        "arm" | "armeb" => &ARM[..],
        _ => return None,
    };
    let mut bytes: Vec<u8> = words
        .iter()
        .flat_map(|w| match arch.endian {
            Endian::Big if arch.class == 32 => w.to_be_bytes(),
            _ => w.to_le_bytes(),
        })
        .collect();
    bytes.push(b'\n');
    Some(Code::new(bytes))
}

/// AArch64: x19 walks the argv slots down to x20 (the entry sp); `svc #0` keeps every register
/// but x0. write is syscall 64, exit 93. The newline follows the last word.
const AARCH64: [u32; 24] = [
    0x9100_43f3, // 00: add  x19, sp, #16  ; argv[1] slot
    0x9100_03f4, // 04: mov  x20, sp
    // 08 top:
    0xf940_0261, // 08: ldr  x1, [x19]
    0xd280_0002, // 0c: mov  x2, #0  ; length
    0xb400_0101, // 10: cbz  x1, nl (0x30)  ; NULL: no string
    // 14 len:
    0x3862_6823, // 14: ldrb w3, [x1, x2]
    0x3400_0063, // 18: cbz  w3, wr (0x24)
    0x9100_0442, // 1c: add  x2, x2, #1
    0x17ff_fffd, // 20: b    len (0x14)
    // 24 wr:
    0xd280_0020, // 24: mov  x0, #1
    0xd280_0808, // 28: mov  x8, #64  ; write
    0xd400_0001, // 2c: svc  #0  ; write(1, x1, x2)
    // 30 nl:
    0xd280_0020, // 30: mov  x0, #1
    0x1000_0161, // 34: adr  x1, newline (0x60)
    0xd280_0022, // 38: mov  x2, #1
    0xd280_0808, // 3c: mov  x8, #64
    0xd400_0001, // 40: svc  #0  ; write(1, "\n", 1)
    0xd100_2273, // 44: sub  x19, x19, #8
    0xeb14_027f, // 48: cmp  x19, x20
    0x54ff_fde8, // 4c: b.hi top (0x08)  ; argv[0] still to do
    0xf940_03e0, // 50: ldr  x0, [sp]  ; argc
    0x9100_a000, // 54: add  x0, x0, #40
    0xd280_0ba8, // 58: mov  x8, #93  ; exit
    0xd400_0001, // 5c: svc  #0  ; exit(40 + argc)
                 // 60 newline
];

/// 32-bit ARM, ARMv5 ARM-mode instructions only, EABI calls (number in r7, `svc #0`, every
/// register kept but r0). r4 walks the argv slots down to r5 (the entry sp). write is 4,
/// exit 1. The newline follows the last word.
const ARM: [u32; 25] = [
    0xe28d_4008, // 00: add   r4, sp, #8  ; argv[1] slot
    0xe1a0_500d, // 04: mov   r5, sp
    // 08 top:
    0xe594_1000, // 08: ldr   r1, [r4]
    0xe3a0_2000, // 0c: mov   r2, #0  ; length
    0xe351_0000, // 10: cmp   r1, #0
    0x0a00_0006, // 14: beq   nl (0x34)  ; NULL: no string
    // 18 len:
    0xe7d1_3002, // 18: ldrb  r3, [r1, r2]
    0xe353_0000, // 1c: cmp   r3, #0
    0x1282_2001, // 20: addne r2, r2, #1
    0x1aff_fffb, // 24: bne   len (0x18)
    0xe3a0_0001, // 28: mov   r0, #1
    0xe3a0_7004, // 2c: mov   r7, #4  ; write
    0xef00_0000, // 30: svc   #0  ; write(1, r1, r2)
    // 34 nl:
    0xe3a0_0001, // 34: mov   r0, #1
    0xe28f_1024, // 38: add   r1, pc, #36  ; adr r1, newline (0x64)
    0xe3a0_2001, // 3c: mov   r2, #1
    0xe3a0_7004, // 40: mov   r7, #4
    0xef00_0000, // 44: svc   #0  ; write(1, "\n", 1)
    0xe244_4004, // 48: sub   r4, r4, #4
    0xe154_0005, // 4c: cmp   r4, r5
    0x8aff_ffec, // 50: bhi   top (0x08)  ; argv[0] still to do
    0xe59d_0000, // 54: ldr   r0, [sp]  ; argc
    0xe280_0028, // 58: add   r0, r0, #40
    0xe3a0_7001, // 5c: mov   r7, #1  ; exit
    0xef00_0000, // 60: svc   #0  ; exit(40 + argc)
                 // 64 newline
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchTable;
    use crate::probe::{EXIT_CODE, expected_output, program};

    fn arch(name: &str) -> Arch {
        let t = ArchTable::embedded();
        t.iter().find(|a| a.name == name).expect(name).clone()
    }

    #[test]
    fn big_endian_variants_differ_only_where_the_cpu_does() {
        let code = |n: &str| code(&arch(n)).expect(n).bytes;
        assert_eq!(
            code("arm64"),
            code("aarch64_be"),
            "AArch64 code is always little-endian"
        );
        let (le, be) = (code("arm"), code("armeb"));
        let swapped: Vec<u8> = le[..le.len() - 1]
            .chunks(4)
            .flat_map(|w| w.iter().rev().copied())
            .chain([b'\n'])
            .collect();
        assert_eq!(be, swapped, "armeb is BE32: the same words, big-endian");
    }

    /// The 32-bit probes use ARMv5 instructions only: they run on an ARM926EJ-S too.
    #[test]
    fn arm_probes_run_as_armv5() {
        let want = expected_output("tok-3141", "argv0-of-probe");
        for name in ["arm", "armeb"] {
            let a = arch(name);
            let probe = program(&a).expect("probe");
            let (code, stdout) = crate::probe::run_under_qemu(
                &a,
                &probe,
                &[
                    "-cpu",
                    "arm926",
                    "-0",
                    "argv0-of-probe",
                    "PROBE",
                    "tok-3141",
                ],
            );
            assert_eq!(
                (code, stdout.as_str()),
                (Some(EXIT_CODE), want.as_str()),
                "{name} probe under qemu -cpu arm926"
            );
        }
    }
}
