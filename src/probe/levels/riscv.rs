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

/// Ends every slot.
const EXIT0: &[u32] = &[
    0x0000_0513, // li    a0, 0
    0x05e0_0893, // li    a7, 94  ; exit_group
    0x0000_0073, // ecall
];

/// The level probe's machine code, for `arch` when it is this family's, to be loaded at
/// `start`.
pub(super) fn code(arch: &Arch, _start: u64) -> Option<Vec<u8>> {
    if arch.name != "riscv64" {
        return None;
    }
    let n = CHECKS.len() as u32;
    // Syscalls: number in a7, `ecall`, only a0 changes. prlimit64 261, clone 220 (riscv64
    // has no fork: clone(SIGCHLD, 0, 0, 0, 0) is one), wait4 260, close 57, exit_group 94.
    // s1 counts the checks up to s3, s2 holds the mask; 0(sp) is the zeroed rlimit, 16(sp)
    // the wait status. RV64I only, no compressed instructions.
    let words: [u32; 46] = [
        0xfe01_0113,           // 00: addi  sp, sp, -32
        0x0001_3023,           // 04: sd    zero, 0(sp)
        0x0001_3423,           // 08: sd    zero, 8(sp)
        0x0000_0513,           // 0c: li    a0, 0  ; ourselves
        0x0040_0593,           // 10: li    a1, 4  ; RLIMIT_CORE
        0x0001_0613,           // 14: mv    a2, sp
        0x0000_0693,           // 18: li    a3, 0
        0x1050_0893,           // 1c: li    a7, 261
        0x0000_0073,           // 20: ecall  ; prlimit64(0, CORE, {0, 0}, 0)
        0x0000_0493,           // 24: li    s1, 0
        0x0000_0913,           // 28: li    s2, 0
        0x0000_0993 | n << 20, // 2c: li    s3, n
        // 30 loop:
        0x0534_8e63, // 30: beq   s1, s3, done (0x8c)
        0x0110_0513, // 34: li    a0, 17  ; SIGCHLD
        0x0000_0593, // 38: li    a1, 0
        0x0000_0613, // 3c: li    a2, 0
        0x0000_0693, // 40: li    a3, 0
        0x0000_0713, // 44: li    a4, 0
        0x0dc0_0893, // 48: li    a7, 220
        0x0000_0073, // 4c: ecall  ; clone(SIGCHLD, 0, 0, 0, 0)
        0x0405_0463, // 50: beqz  a0, child (0x98)
        0x0010_0293, // 54: li    t0, 1
        0x0051_2823, // 58: sw    t0, 16(sp)  ; "failed" unless wait4 says otherwise
        0x0101_0593, // 5c: addi  a1, sp, 16
        0x0000_0613, // 60: li    a2, 0
        0x0000_0693, // 64: li    a3, 0
        0x1040_0893, // 68: li    a7, 260
        0x0000_0073, // 6c: ecall  ; wait4(pid, &status, 0, 0)
        0x0101_2283, // 70: lw    t0, 16(sp)
        0x0002_9863, // 74: bnez  t0, next (0x84)
        0x0010_0293, // 78: li    t0, 1
        0x0092_92b3, // 7c: sll   t0, t0, s1
        0x0059_6933, // 80: or    s2, s2, t0
        // 84 next:
        0x0014_8493, // 84: addi  s1, s1, 1
        0xfa9f_f06f, // 88: j     loop (0x30)
        // 8c done:
        0x0649_0513, // 8c: addi  a0, s2, 100
        0x05e0_0893, // 90: li    a7, 94
        0x0000_0073, // 94: ecall  ; exit_group(100 + mask)
        // 98 child:
        0x0020_0513, // 98: li    a0, 2
        0x0390_0893, // 9c: li    a7, 57
        0x0000_0073, // a0: ecall  ; close(2)
        0x0000_0297, // a4: auipc t0, 0
        0x0142_8293, // a8: addi  t0, t0, 20  ; slots (0xb8)
        0x0064_9313, // ac: slli  t1, s1, 6  ; i * SLOT
        0x0062_82b3, // b0: add   t0, t0, t1
        0x0002_8067, // b4: jr    t0
                     // b8 slots:
    ];
    let checks: Vec<Vec<u8>> = CHECKS.iter().map(|c| le_words(c)).collect();
    let refs: Vec<&[u8]> = checks.iter().map(Vec::as_slice).collect();
    let mut code = le_words(&words);
    code.extend(slots(&refs, &le_words(&[0x0000_0013]), &le_words(EXIT0))); // filler: nop
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
