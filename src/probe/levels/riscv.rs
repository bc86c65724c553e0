//! riscv64 levels: the RVA application profiles RVA20U64 (rv64gc), RVA22U64 and RVA23U64, from
//! checks of single extensions, which also stand on their own (`zba`, `v`, ...).
//!
//! Checks (bit: instructions, and the extension that introduced them):
//! - 0 `rv64gc`: MUL (M), AMOADD.D (A), FADD.D (F and D), C.ADDI (C). The program itself is
//!   RV64I only, so G and C get a check.
//! - 1 `zba`: SH1ADD. 2 `zbb`: ANDN. 3 `zbs`: BCLRI.
//! - 4 `zicbom+zicboz+zfhmin`: CBO.CLEAN (Zicbom), CBO.ZERO (Zicboz), FMV.H.X (Zfhmin): the
//!   rest of RVA22U64 that has instructions of its own (Zicbop and Zihintpause are hints,
//!   which run everywhere and prove nothing).
//! - 5 `v`: VSETVLI, VADD.VV.
//! - 6 `zicond+zfa+zcb`: CZERO.EQZ (Zicond), FLI.D (Zfa), C.ZEXT.B (Zcb): three of the
//!   extensions RVA23U64 adds besides V. Zvbb, Zimop, Zcmop and Zawrs are further ones no
//!   check here looks at.
//!
//! Profiles: RVA20U64 needs check 0; RVA22U64 checks 0-4; RVA23U64 all of them.
//!
//! Encodings: llvm-mc-16 (`-triple=riscv64 -mattr=+m,+a,+f,+d,+c,+zba,+zbb,+zbs,+zicbom,
//! +zicboz,+zfhmin,+v`) for all but check 6. LLVM 16 predates the ratified Zicond, Zfa and Zcb,
//! so those three words come from LLVM's later MC tests (`czero.eqz t0, a3, ra`,
//! `fli.d ft1, -1.0`, `c.zext.b s0`, same operands), and no emulator here runs them.
//!
//! Measured with QEMU 7.2 (`qemu-riscv64-static -cpu MODEL PROBE; echo $?`, as
//! `level_probe_under_qemu_7_2` does), each rva20u64:
//! - `rv64` (the default): checks rv64gc, zba, zbb, zbs.
//! - `rv64,zba=false,zbb=false,zbs=false`, `sifive-u54`: rv64gc only.
//! - `rv64,v=true,vlen=128,zba=true,zbb=true,zbs=true`: rv64gc, zba, zbb, zbs, v.
//! - `rv64,Zfhmin=true`: as `rv64` (check 4 still fails: no Zicbom).
//!
//! QEMU 7.2 has no Zicbom or Zicboz (no CPU property names them; later versions added them),
//! nor Zicond, Zfa or Zcb, so it reaches neither RVA22U64 nor RVA23U64.

use super::{Family, Level, le_words, slots};
use crate::arch::Arch;

pub const RVA20U64: &str = "rva20u64";
pub const RVA22U64: &str = "rva22u64";
pub const RVA23U64: &str = "rva23u64";
pub const RV64GC: &str = "rv64gc";
pub const ZBA: &str = "zba";
pub const ZBB: &str = "zbb";
pub const ZBS: &str = "zbs";
pub const RVA22_REST: &str = "zicbom+zicboz+zfhmin";
pub const V: &str = "v";
pub const RVA23_REST: &str = "zicond+zfa+zcb";

pub static FAMILY: Family = Family {
    arch: "riscv64",
    checks: &[RV64GC, ZBA, ZBB, ZBS, RVA22_REST, V, RVA23_REST],
    levels: &[
        Level {
            name: RVA20U64,
            needs: 0b1,
            variant: None,
            qemu_cpu: Some("rv64"),
        },
        Level {
            name: RVA22U64,
            needs: 0b1_1111,
            variant: None,
            qemu_cpu: None,
        },
        Level {
            name: RVA23U64,
            needs: 0b111_1111,
            variant: None,
            qemu_cpu: None,
        },
    ],
};

/// A compressed (16-bit) instruction followed by C.NOP, so the next word stays aligned.
const fn c_pair(c: u16) -> u32 {
    c as u32 | 0x0001 << 16
}

const CHECKS: [&[u32]; 7] = [
    &[
        0x02a5_0533,    // mul       a0, a0, a0
        0x00a1_352f,    // amoadd.d  a0, a0, (sp)
        0x02a5_7553,    // fadd.d    fa0, fa0, fa0
        c_pair(0x0505), // c.addi    a0, 1 ; c.nop
    ],
    &[
        0x20a5_2533, // sh1add    a0, a0, a0
    ],
    &[
        0x40a5_7533, // andn      a0, a0, a0
    ],
    &[
        0x4815_1513, // bclri     a0, a0, 1
    ],
    &[
        0x0001_0513, // mv        a0, sp  ; a mapped block for the cache-block ops
        0x0015_200f, // cbo.clean (a0)
        0x0045_200f, // cbo.zero  (a0)
        0xf400_0553, // fmv.h.x   fa0, zero
    ],
    &[
        0x0d00_72d7, // vsetvli   t0, zero, e32, m1, ta, ma
        0x0200_0057, // vadd.vv   v0, v0, v0
    ],
    &[
        0x0e16_d2b3,    // czero.eqz t0, a3, ra
        0xf210_00d3,    // fli.d     ft1, -1.0
        c_pair(0x9c61), // c.zext.b  s0 ; c.nop
    ],
];

/// Ends every slot: back to `ran`, whose address s5 holds.
const BACK: &[u32] = &[
    0x000a_8067, // jr s5
];

/// The level probe's machine code, for `arch` when it is this family's, to be loaded at
/// `start`.
pub(super) fn code(arch: &Arch, _start: u64) -> Option<Vec<u8>> {
    if arch.name != "riscv64" {
        return None;
    }
    let n = CHECKS.len() as u32;
    // Syscalls: number in a7, `ecall`, only a0 changes. prlimit64 261, rt_sigaction 134,
    // exit_group 94. A signal handler is entered with a0-a2, ra and sp changed. s1 counts
    // the checks, s2 holds the mask, s4 the stack pointer, s5 the address of `ran`; 0(sp) is
    // the zeroed rlimit, 16(sp) the sigaction (handler, flags, then zeros). RV64I only, no
    // compressed instructions.
    let words: [u32; 48] = [
        0xfd01_0113, // 00: addi sp, sp, -48
        0x0001_3023, // 04: sd zero, 0(sp)
        0x0001_3423, // 08: sd zero, 8(sp)
        0x0000_0513, // 0c: li a0, 0  ; ourselves
        0x0040_0593, // 10: li a1, 4  ; RLIMIT_CORE
        0x0001_0613, // 14: mv a2, sp
        0x0000_0693, // 18: li a3, 0
        0x1050_0893, // 1c: li a7, 261
        0x0000_0073, // 20: ecall  ; prlimit64(0, CORE, {0, 0}, 0)
        0x0201_3023, // 24: sd zero, 32(sp)
        0x0201_3423, // 28: sd zero, 40(sp)
        0x0000_0297, // 2c: auipc t0, 0
        0x0802_8293, // 30: addi t0, t0, 128  ; handler (0xac)
        0x0051_3823, // 34: sd t0, 16(sp)  ; sa_handler
        0x4000_02b7, // 38: lui t0, 0x40000  ; SA_NODEFER
        0x0051_3c23, // 3c: sd t0, 24(sp)  ; sa_flags
        0x0040_0493, // 40: li s1, 4  ; SIGILL
        // 44 signals:
        0x0004_8513, // 44: mv a0, s1
        0x0101_0593, // 48: addi a1, sp, 16
        0x0000_0613, // 4c: li a2, 0
        0x0080_0693, // 50: li a3, 8
        0x0860_0893, // 54: li a7, 134
        0x0000_0073, // 58: ecall  ; rt_sigaction(sig, &act, 0, 8)
        0x0014_8493, // 5c: addi s1, s1, 1
        0x00c0_0293, // 60: li t0, 12
        0xfe54_90e3, // 64: bne s1, t0, signals (0x44)  ; through SIGSEGV
        0x0000_0493, // 68: li s1, 0
        0x0000_0913, // 6c: li s2, 0
        0x0001_0a13, // 70: mv s4, sp  ; the stack pointer the handler restores
        0x0000_0a97, // 74: auipc s5, 0
        0x024a_8a93, // 78: addi s5, s5, 36  ; ran (0x98)
        // 7c loop:
        0x0000_0293 | n << 20, // 7c: li t0, n
        0x0254_8a63,           // 80: beq s1, t0, done (0xb4)
        0x0000_0297,           // 84: auipc t0, 0
        0x03c2_8293,           // 88: addi t0, t0, 60  ; slots (0xc0)
        0x0064_9313,           // 8c: slli t1, s1, 6  ; i * SLOT
        0x0062_82b3,           // 90: add t0, t0, t1
        0x0002_8067,           // 94: jr t0
        // 98 ran:
        0x0010_0293, // 98: li t0, 1
        0x0092_92b3, // 9c: sll t0, t0, s1
        0x0059_6933, // a0: or s2, s2, t0
        // a4 next:
        0x0014_8493, // a4: addi s1, s1, 1
        0xfd5f_f06f, // a8: j loop (0x7c)
        // ac handler:
        0x000a_0113, // ac: mv sp, s4  ; drop the signal frame
        0xff5f_f06f, // b0: j next (0xa4)
        // b4 done:
        0x0649_0513, // b4: addi a0, s2, 100
        0x05e0_0893, // b8: li a7, 94
        0x0000_0073, // bc: ecall  ; exit_group(100 + mask)
                     // c0 slots:
    ];
    let checks: Vec<Vec<u8>> = CHECKS.iter().map(|c| le_words(c)).collect();
    let refs: Vec<&[u8]> = checks.iter().map(Vec::as_slice).collect();
    let mut code = le_words(&words);
    code.extend(slots(&refs, &le_words(&[0x0000_0013]), &le_words(BACK))); // filler: nop
    Some(code)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{arch, under_qemu};
    use super::*;

    #[test]
    fn level_probe_under_qemu_7_2() {
        let a = arch("riscv64");
        let cases: &[(Option<&str>, &[&str])] = &[
            (None, &[RV64GC, ZBA, ZBB, ZBS]),
            (Some("rv64"), &[RV64GC, ZBA, ZBB, ZBS]),
            (Some("rv64,zba=false,zbb=false,zbs=false"), &[RV64GC]),
            (Some("sifive-u54"), &[RV64GC]),
            (Some("rv64,Zfhmin=true"), &[RV64GC, ZBA, ZBB, ZBS]),
            (
                Some("rv64,v=true,vlen=128,zba=true,zbb=true,zbs=true"),
                &[RV64GC, ZBA, ZBB, ZBS, V],
            ),
        ];
        for (cpu, checks) in cases {
            let (levels, ran) = under_qemu(&a, *cpu);
            assert_eq!(levels, [RVA20U64], "-cpu {cpu:?}");
            assert_eq!(&ran, checks, "-cpu {cpu:?}");
        }
    }
}
