//! Echo probe for SPARC: 32-bit V8 (`sparc`), 32-bit V8+ (`sparc32plus`) and 64-bit V9
//! (`sparc64`), all big-endian.
//!
//! One instruction list serves all three. The 32-bit ABIs find argc at `%sp + 64`, above the
//! 16-word register-window save area; the 64-bit ABI biases `%sp` by 2047 and saves 16
//! doublewords, so argc is at `%sp + 2047 + 128`, and argc and the argv pointers are 8 bytes
//! (`ldx` instead of `ld`). Linux syscalls are `ta 0x10` for 32-bit code (V8 and V8+) and
//! `ta 0x6d` for 64-bit code, number in `%g1`, arguments in `%o0..`; both number `exit` 1
//! and `write` 4, and signal an error with the carry flag (ignored here). The probe's one
//! NULL test compares a whole pointer, so 64-bit code branches on `%xcc`.
//!
//! Branches and calls have a delay slot; `,a` (annul) runs the slot only when the branch is
//! taken. `call` leaves the return address in `%o7`, which the syscalls keep, and argc and
//! argv[0] sit in the locals `%l0`/`%l1`.

use crate::arch::{Arch, Endian};
use crate::probe::{Code, code_address};

/// Number of instruction words before the newline byte.
const WORDS: u32 = 31;

pub(super) fn code(arch: &Arch) -> Option<Code> {
    let is64 = arch.class == 64;
    // Stack offset of argc, slot size, the op3 bits that turn `ld` into `ldx`, the trap
    // number, and the NULL test: `be` on %icc (Bicc) or `be %xcc` (BPcc, V9 only).
    let (argc, slot, ldx, trap, be) = if is64 {
        (2047 + 128, 8, 0x0058_0000, 0x6d, 0x0268_0006)
    } else {
        (64, 4, 0, 0x10, 0x0280_0006)
    };
    let (argv0, argv1) = (argc + slot, argc + 2 * slot);
    let nl = code_address(arch) as u32 + 4 * WORDS;
    let (nl_hi, nl_lo) = (nl >> 10, nl & 0x3ff);
    #[rustfmt::skip]
    let words: [u32; WORDS as usize] = [
        // _start:
        0xe003_a000 | ldx | argc,            //  0  ld/ldx [%sp + argc], %l0        argc
        0xe203_a000 | ldx | argv0,           //  1  ld/ldx [%sp + argv0], %l1       argv[0]
        0xd203_a000 | ldx | argv1,           //  2  ld/ldx [%sp + argv1], %o1       argv[1]
        0x80a4_2002,                         //  3  cmp    %l0, 2
        0x2680_0002,                         //  4  bl,a   6f                      argc < 2:
        0x9210_2000,                         //  5  clr    %o1                     (slot) no token
        0x4000_0007,                         //  6  call   print (13)              print argv[1]
        0x0100_0000,                         //  7  nop                            (delay slot)
        0x4000_0005,                         //  8  call   print (13)              print argv[0]
        0x9210_0011,                         //  9  mov    %l1, %o1                (delay slot)
        0x9004_2028,                         // 10  add    %l0, 40, %o0            status = 40 + argc
        0x8210_2001,                         // 11  mov    1, %g1                  exit
        0x91d0_2000 | trap,                  // 12  ta     trap
        // print: write(%o1, strlen(%o1)) and a newline; %o1 may be NULL (length 0).
        0x80a2_6000,                         // 13  cmp    %o1, 0
        be,                                  // 14  be     [%xcc,] 20f             NULL: skip the count
        0x9410_2000,                         // 15  clr    %o2                     (delay slot) len = 0
        0xd60a_400a,                         // 16  ldub   [%o1 + %o2], %o3
        0x80a2_e000,                         // 17  cmp    %o3, 0
        0x32bf_fffe,                         // 18  bne,a  16b                     until the NUL byte
        0x9402_a001,                         // 19  inc    %o2                     (slot, annulled at NUL)
        0x9010_2001,                         // 20  mov    1, %o0                  stdout
        0x8210_2004,                         // 21  mov    4, %g1                  write
        0x91d0_2000 | trap,                  // 22  ta     trap                    write(1, s, len)
        0x9010_2001,                         // 23  mov    1, %o0
        0x1300_0000 | nl_hi,                 // 24  sethi  %hi(nl), %o1
        0x9212_6000 | nl_lo,                 // 25  or     %o1, %lo(nl), %o1
        0x9410_2001,                         // 26  mov    1, %o2
        0x8210_2004,                         // 27  mov    4, %g1
        0x91d0_2000 | trap,                  // 28  ta     trap                    write(1, "\n", 1)
        0x81c3_e008,                         // 29  retl
        0x0100_0000,                         // 30  nop                            (delay slot)
    ];
    let mut bytes = super::words(&words, Endian::Big);
    bytes.push(b'\n'); // nl
    Some(Code::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::super::mips::run_without_token;

    /// With no token each SPARC probe prints an empty line and argv[0] and exits 41.
    #[test]
    fn sparc_probes_run_without_a_token() {
        for name in ["sparc", "sparc32plus", "sparc64"] {
            assert_eq!(
                run_without_token(name),
                (Some(41), "\nbare-argv0\n".to_string()),
                "{name}"
            );
        }
    }
}
