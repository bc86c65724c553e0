//! Echo probe for SuperH SH-4, little-endian (`sh4`) and big-endian (`sh4eb`).
//!
//! Instructions are 16 bits; the two arches share the list and differ only in how each
//! halfword is stored. At entry `@r15` holds argc and `@(4,r15)`, `@(8,r15)` argv[0] and
//! argv[1]. Linux syscalls are `trapa #0x10 + nargs` (as glibc issues them) with the number
//! in `r3` (`exit` 1, `write` 4) and arguments in `r4..r7`; the kernel returns in `r0` and
//! keeps the rest, so argc and argv[0] wait in `r8`/`r9`. `bsr`, `rts` and `bf/s` have a
//! delay slot; `bt` does not. The newline is addressed with `mova` (PC-relative, 4-aligned).

use crate::arch::{Arch, Endian};
use crate::probe::{Code, code_address};

pub(super) fn code(arch: &Arch) -> Option<Code> {
    // `mova` rounds the PC down to 4 bytes, so the offsets below hold only if the code
    // itself starts 4-aligned (it does: 0x400000 + 52 + 32).
    debug_assert_eq!(code_address(arch) % 4, 0);
    #[rustfmt::skip]
    let halfwords: [u16; 36] = [
        // _start:
        0x68f2, // 00  mov.l  @r15, r8          argc
        0x59f1, // 02  mov.l  @(4,r15), r9      argv[0]
        0x55f2, // 04  mov.l  @(8,r15), r5      argv[1]
        0xe001, // 06  mov    #1, r0
        0x3807, // 08  cmp/gt r0, r8            T = argc > 1
        0x8900, // 0a  bt     0e                yes: keep argv[1]
        0xe500, // 0c  mov    #0, r5            no token (NULL)
        0xb006, // 0e  bsr    print (1e)        print argv[1]
        0x0009, // 10  nop                      (delay slot)
        0xb004, // 12  bsr    print (1e)        print argv[0]
        0x6593, // 14  mov    r9, r5            (delay slot)
        0xe428, // 16  mov    #40, r4
        0x348c, // 18  add    r8, r4            status = 40 + argc
        0xe301, // 1a  mov    #1, r3            exit
        0xc311, // 1c  trapa  #0x11
        // print: write(r5, strlen(r5)) and a newline; r5 may be NULL (length 0).
        0xe600, // 1e  mov    #0, r6            len = 0
        0x2558, // 20  tst    r5, r5            T = (r5 == NULL)
        0x8905, // 22  bt     30                NULL: skip the count
        0x6153, // 24  mov    r5, r1
        0x6014, // 26  mov.b  @r1+, r0
        0x2008, // 28  tst    r0, r0
        0x8ffc, // 2a  bf/s   26                until the NUL byte
        0x7601, // 2c  add    #1, r6            (delay slot) len++
        0x76ff, // 2e  add    #-1, r6           undo the count of the NUL
        0xe401, // 30  mov    #1, r4            stdout
        0xe304, // 32  mov    #4, r3            write
        0xc313, // 34  trapa  #0x13             write(1, s, len)
        0xe401, // 36  mov    #1, r4
        0xc703, // 38  mova   nl (48), r0
        0x6503, // 3a  mov    r0, r5
        0xe601, // 3c  mov    #1, r6
        0xe304, // 3e  mov    #4, r3
        0xc313, // 40  trapa  #0x13             write(1, "\n", 1)
        0x000b, // 42  rts
        0x0009, // 44  nop                      (delay slot)
        0x0009, // 46  nop                      (pad nl to 4 bytes for mova)
    ];
    let mut bytes: Vec<u8> = halfwords
        .iter()
        .flat_map(|h| match arch.endian {
            Endian::Little => h.to_le_bytes(),
            Endian::Big => h.to_be_bytes(),
        })
        .collect();
    bytes.push(b'\n'); // 48  nl
    Some(Code::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::super::mips::run_without_token;

    /// With no token each SH-4 probe prints an empty line and argv[0] and exits 41.
    #[test]
    fn sh_probes_run_without_a_token() {
        for name in ["sh4", "sh4eb"] {
            assert_eq!(
                run_without_token(name),
                (Some(41), "\nbare-argv0\n".to_string()),
                "{name}"
            );
        }
    }
}
