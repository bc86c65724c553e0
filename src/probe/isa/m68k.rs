//! Echo probe for m68k (680x0, big-endian, 32-bit).
//!
//! Instructions are one or more 16-bit big-endian words; only 68000 instructions are used.
//! At entry `(%sp)` holds argc and `4(%sp)`, `8(%sp)` argv[0] and argv[1]. Linux syscalls
//! are `trap #0` with the number in `%d0` (`exit` 1, `write` 4) and arguments in `%d1`,
//! `%d2`, `%d3`; the kernel returns in `%d0` and keeps every other register. The newline is
//! addressed PC-relative, so the code is position independent.

use crate::arch::Arch;
use crate::probe::Code;

pub(super) fn code(_arch: &Arch) -> Option<Code> {
    #[rustfmt::skip]
    let words: [u16; 34] = [
        // _start:
        0x2a17,         // 00  move.l  (%sp), %d5          argc
        0x286f, 0x0004, // 02  movea.l 4(%sp), %a4         argv[0]
        0x206f, 0x0008, // 06  movea.l 8(%sp), %a0         argv[1]
        0x7002,         // 0a  moveq   #2, %d0
        0xba80,         // 0c  cmp.l   %d0, %d5
        0x6c02,         // 0e  bge.s   12f                 argc >= 2: keep argv[1]
        0x91c8,         // 10  suba.l  %a0, %a0            else no token (NULL)
        0x610c,         // 12  bsr.s   print (20)          print argv[1]
        0x204c,         // 14  movea.l %a4, %a0
        0x6108,         // 16  bsr.s   print (20)          print argv[0]
        0x7228,         // 18  moveq   #40, %d1
        0xd285,         // 1a  add.l   %d5, %d1            status = 40 + argc
        0x7001,         // 1c  moveq   #1, %d0             exit
        0x4e40,         // 1e  trap    #0
        // print: write(%a0, strlen(%a0)) and a newline; %a0 may be NULL (length 0).
        0x7600,         // 20  moveq   #0, %d3             len = 0
        0x2408,         // 22  move.l  %a0, %d2            buf (sets Z when NULL)
        0x6708,         // 24  beq.s   2e                  NULL: skip the count
        0x4a18,         // 26  tst.b   (%a0)+
        0x6704,         // 28  beq.s   2e                  stop at the NUL byte
        0x5283,         // 2a  addq.l  #1, %d3             len++
        0x60f8,         // 2c  bra.s   26
        0x7201,         // 2e  moveq   #1, %d1             stdout
        0x7004,         // 30  moveq   #4, %d0             write
        0x4e40,         // 32  trap    #0                  write(1, s, len)
        0x7201,         // 34  moveq   #1, %d1
        0x41fa, 0x000c, // 36  lea     nl(%pc), %a0        (nl = 0x44)
        0x2408,         // 3a  move.l  %a0, %d2
        0x7601,         // 3c  moveq   #1, %d3
        0x7004,         // 3e  moveq   #4, %d0
        0x4e40,         // 40  trap    #0                  write(1, "\n", 1)
        0x4e75,         // 42  rts
    ];
    let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    bytes.push(b'\n'); // 44  nl
    Some(Code::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::super::mips::run_without_token;

    /// With no token the m68k probe prints an empty line and argv[0] and exits 41.
    #[test]
    fn m68k_probe_runs_without_a_token() {
        assert_eq!(
            run_without_token("m68k"),
            (Some(41), "\nbare-argv0\n".to_string())
        );
    }
}
