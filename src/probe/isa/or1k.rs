//! Echo-probe machine code for OpenRISC 1000 (32-bit, big-endian).
//!
//! At entry `r1` (sp) points at argc, then argv[0], argv[1], ..., NULL. `l.sys 1` is the
//! syscall: number in `r11`, arguments in `r3, r4, r5`, result in `r11`; state lives in the
//! callee-saved `r14..r22`. Syscalls are the generic table's: write 64, exit 93. Branches and
//! `l.jal` run their delay slot; each `l.sys` is followed by `l.nop`, as the C library does.

use crate::arch::Arch;
use crate::probe::Code;

/// `l.addi r22, r9, 0`; [`code`] fills in the displacement to the data.
const ADDI_R22_R9: u32 = 0x9ec9_0000;
/// Index of that `l.addi`: `l.jal` left its address in r9.
const ADDI_AT: usize = 4;

/// The instructions. The loop prints argv[i] for i = 1 then 0, using the "\0" in the data
/// when i >= argc, so a missing argument prints as an empty line and is never read.
const WORDS: [u32; 35] = [
    0x85c1_0000, //        l.lwz   r14, 0(r1)      argc
    0x9e01_0004, //        l.addi  r16, r1, 4      &argv[0]
    0x0400_0002, //        l.jal   1f              r9 = 1f
    0x9e40_0001, //        l.addi  r18, r0, 1      (delay slot) i = 1
    ADDI_R22_R9, // 1:     l.addi  r22, r9, data-1b   &"\n\0"
    0xb872_0002, // loop:  l.slli  r3, r18, 2
    0xe063_8000, //        l.add   r3, r3, r16     &argv[i]
    0xe592_7000, //        l.sflts r18, r14        flag = i < argc
    0x0c00_0003, //        l.bnf   2f
    0x9c96_0001, //        l.addi  r4, r22, 1      (delay slot) the empty string "\0"
    0x8483_0000, //        l.lwz   r4, 0(r3)       i < argc: argv[i]
    0x9ca4_ffff, // 2:     l.addi  r5, r4, -1
    0x8cc5_0001, // scan:  l.lbz   r6, 1(r5)
    0xbc26_0000, //        l.sfnei r6, 0
    0x13ff_fffe, //        l.bf    scan
    0x9ca5_0001, //        l.addi  r5, r5, 1       (delay slot) r5 stops on the NUL
    0xe0a5_2002, //        l.sub   r5, r5, r4      strlen
    0x9c60_0001, //        l.addi  r3, r0, 1       stdout
    0x9d60_0040, //        l.addi  r11, r0, 64     write
    0x2000_0001, //        l.sys   1
    0x1500_0000, //        l.nop
    0x9c60_0001, //        l.addi  r3, r0, 1
    0xa896_0000, //        l.ori   r4, r22, 0      "\n"
    0x9ca0_0001, //        l.addi  r5, r0, 1
    0x9d60_0040, //        l.addi  r11, r0, 64     write
    0x2000_0001, //        l.sys   1
    0x1500_0000, //        l.nop
    0x9e52_ffff, //        l.addi  r18, r18, -1
    0xbd72_0000, //        l.sfgesi r18, 0
    0x13ff_ffe8, //        l.bf    loop
    0x1500_0000, //        l.nop                   (delay slot)
    0x9c6e_0028, //        l.addi  r3, r14, 40     40 + argc
    0x9d60_005d, //        l.addi  r11, r0, 93     exit
    0x2000_0001, //        l.sys   1
    0x1500_0000, //        l.nop
];

pub(super) fn code(_arch: &Arch) -> Option<Code> {
    let data_disp = ((WORDS.len() - ADDI_AT) * 4) as u32;
    let mut bytes: Vec<u8> = WORDS
        .iter()
        .enumerate()
        .map(|(i, &w)| if i == ADDI_AT { w | data_disp } else { w })
        .flat_map(u32::to_be_bytes)
        .collect();
    bytes.extend_from_slice(b"\n\0"); // data
    Some(Code::new(bytes))
}
