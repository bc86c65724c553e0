//! Echo-probe machine code for Xtensa, little-endian (`xtensa`) and big-endian (`xtensaeb`).
//!
//! Only 24-bit core instructions are used (no density option, no windowed calls), so the code
//! suits QEMU's default linux-user cores for both byte orders (dc232b and fsf). At entry `a1`
//! (sp) points at argc, then argv[0], argv[1], ..., NULL. `syscall` takes the number in `a2`
//! and arguments in `a6, a3, a4`, returns in `a2` and keeps the other registers. Syscalls:
//! write 13, exit 118.
//!
//! An instruction is a list of fields. Little-endian cores pack them from bit 0 up and store
//! the 24-bit word low byte first; big-endian cores pack the same list from bit 23 down and
//! store it high byte first. Only [`pack`] knows this.

use crate::arch::{Arch, Endian};
use crate::probe::{Code, code_address};

/// One instruction: (value, width in bits), the field at bit 0 of a little-endian word first.
type Fields = Vec<(u32, u32)>;

/// RRR format, op0 = 0: `op2 op1 r s t op0`.
fn rrr(op2: u32, op1: u32, r: u32, s: u32, t: u32) -> Fields {
    vec![(0, 4), (t, 4), (s, 4), (r, 4), (op1, 4), (op2, 4)]
}

/// RRI8 format: `imm8 r s t op0`.
fn rri8(op0: u32, r: u32, s: u32, t: u32, imm8: i32) -> Fields {
    vec![(op0, 4), (t, 4), (s, 4), (r, 4), (imm8 as u32, 8)]
}

/// BRI12 format with op0 = 6 (SI), n = 1 (BZ): `imm12 s m n op0`; m picks the condition.
fn bz(m: u32, s: u32, imm12: i32) -> Fields {
    vec![(6, 4), (1, 2), (m, 2), (s, 4), (imm12 as u32, 12)]
}

/// CALL format, n = 0 (CALL0): `offset n op0`.
fn call0(offset: u32) -> Fields {
    vec![(5, 4), (0, 2), (offset, 18)]
}

/// The three instruction bytes of `fields` in the given byte order.
fn pack(fields: &[(u32, u32)], endian: Endian) -> [u8; 3] {
    let mut word = 0u32;
    let mut at = 0;
    for &(value, width) in fields {
        let value = value & ((1 << width) - 1);
        word |= match endian {
            Endian::Little => value << at,
            Endian::Big => value << (24 - at - width),
        };
        at += width;
    }
    debug_assert_eq!(at, 24);
    match endian {
        Endian::Little => [word as u8, (word >> 8) as u8, (word >> 16) as u8],
        Endian::Big => [(word >> 16) as u8, (word >> 8) as u8, word as u8],
    }
}

pub(super) fn code(arch: &Arch) -> Option<Code> {
    // addi is RRI8 op0=2 r=12; movi is r=10 with imm12 split s:imm8 (all values here < 256).
    let addi = |t, s, imm| rri8(2, 12, s, t, imm);
    let movi = |t, imm| rri8(2, 10, 0, t, imm);
    let syscall = || rrr(0, 0, 5, 0, 0);
    // call0 jumps to the next 4-aligned word after its own; the code starts 4-aligned, so
    // it lands on offset 8 and leaves a0 = its own address + 3: the five bytes between hold
    // the data.
    debug_assert_eq!(code_address(arch) % 4, 0);
    let head = call0(1); //             _start: call0  1f      a0 = &"\n\0"
    let data = b"\n\0\0\0\0"; //        data:   "\n\0", padding to 1f
    let body: [Fields; 25] = [
        rri8(2, 2, 1, 8, 0),   // 1:     l32i   a8, a1, 0     argc
        addi(9, 1, 4),         //        addi   a9, a1, 4     &argv[0]
        movi(10, 1),           //        movi   a10, 1        i = 1
        rrr(10, 0, 11, 10, 9), // loop:  addx4  a11, a10, a9  &argv[i]
        rri8(2, 2, 11, 3, 0),  //        l32i   a3, a11, 0    (argv[argc+1] is envp: readable)
        rri8(7, 2, 10, 8, 2),  //        blt    a10, a8, 2f   i < argc: keep argv[i]
        addi(3, 0, 1),         //        addi   a3, a0, 1     else the empty string "\0"
        addi(11, 3, -1),       // 2:     addi   a11, a3, -1
        addi(11, 11, 1),       // scan:  addi   a11, a11, 1
        rri8(2, 0, 11, 12, 0), //        l8ui   a12, a11, 0
        bz(1, 12, -10),        //        bnez   a12, scan     a11 stops on the NUL
        rrr(12, 0, 4, 11, 3),  //        sub    a4, a11, a3   strlen
        movi(6, 1),            //        movi   a6, 1         stdout
        movi(2, 13),           //        movi   a2, 13        write
        syscall(),             //        syscall
        movi(6, 1),            //        movi   a6, 1
        rrr(2, 0, 3, 0, 0),    //        or     a3, a0, a0    "\n"
        movi(4, 1),            //        movi   a4, 1
        movi(2, 13),           //        movi   a2, 13        write
        syscall(),             //        syscall
        addi(10, 10, -1),      //        addi   a10, a10, -1
        bz(3, 10, -58),        //        bgez   a10, loop
        addi(6, 8, 40),        //        addi   a6, a8, 40    40 + argc
        movi(2, 118),          //        movi   a2, 118       exit
        syscall(),             //        syscall
    ];
    let mut bytes = pack(&head, arch.endian).to_vec();
    bytes.extend_from_slice(data);
    for insn in &body {
        bytes.extend_from_slice(&pack(insn, arch.endian));
    }
    Some(Code::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Little-endian bytes as GNU as (xtensa-lx106) emits them; big-endian mirrors the fields.
    #[test]
    fn fields_pack_in_both_byte_orders() {
        let le = |f: Fields| pack(&f, Endian::Little);
        let be = |f: Fields| pack(&f, Endian::Big);
        assert_eq!(le(rrr(0, 0, 5, 0, 0)), [0x00, 0x50, 0x00]); // syscall
        assert_eq!(be(rrr(0, 0, 5, 0, 0)), [0x00, 0x05, 0x00]);
        assert_eq!(le(bz(1, 12, -10)), [0x56, 0x6c, 0xff]); // bnez a12, .-6
        assert_eq!(be(bz(1, 12, -10)), [0x65, 0xcf, 0xf6]);
        assert_eq!(le(call0(1)), [0x45, 0x00, 0x00]);
        assert_eq!(be(call0(1)), [0x50, 0x00, 0x01]);
    }
}
