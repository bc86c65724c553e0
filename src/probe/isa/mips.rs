//! Echo probe for MIPS: o32, n32 and n64, either byte order.
//!
//! One instruction list serves all six arches. What differs between the ABIs is the width of
//! a stack slot (argc and the argv pointers: 4 bytes for o32 and n32, 8 for n64), the load and
//! pointer add that go with it (`lw`/`addu` versus `ld`/`daddu`) and the syscall numbers (o32
//! counts from 4000, n64 from 5000, n32 from 6000). Byte order only changes how each word is
//! stored. The table's e_flags already tell QEMU the ABI (EF_MIPS_ABI2 marks n32), so the
//! image keeps them.
//!
//! Syscalls take the number in `$v0` and arguments in `$a0..$a2`; the kernel may clobber the
//! temporaries but keeps `$s0..$s7` and `$ra`, so argc and argv[0] live in `$s0`/`$s1`.
//! Every branch has a delay slot: the instruction after it runs before the branch lands.

use crate::arch::Arch;
use crate::probe::{Code, code_address};

/// The three Linux MIPS syscall ABIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abi {
    O32,
    N32,
    N64,
}

/// EF_MIPS_ABI2: set in e_flags for n32 objects.
const EF_MIPS_ABI2: u32 = 0x20;

fn abi(arch: &Arch) -> Abi {
    if arch.class == 64 {
        Abi::N64
    } else if arch.flags & EF_MIPS_ABI2 != 0 {
        Abi::N32
    } else {
        Abi::O32
    }
}

/// Number of instruction words before the newline byte.
const WORDS: u32 = 32;

pub(super) fn code(arch: &Arch) -> Option<Code> {
    let abi = abi(arch);
    // Stack slot size, load opcode (lw 0x23 / ld 0x37), add funct (addu 0x21 / daddu 0x2d),
    // and the base of the syscall numbers.
    let (slot, load, add, sys) = match abi {
        Abi::O32 => (4, 0x8c00_0000, 0x21, 4000),
        Abi::N32 => (4, 0x8c00_0000, 0x21, 6000),
        Abi::N64 => (8, 0xdc00_0000, 0x2d, 5000),
    };
    // write and exit, by ABI: o32 keeps the i386 numbers (4, 1); n32/n64 their own (1, 58).
    let (write, exit) = match abi {
        Abi::O32 => (sys + 4, sys + 1),
        Abi::N32 | Abi::N64 => (sys + 1, sys + 58),
    };
    let slot2 = 2 * slot;
    let nl = code_address(arch) as u32 + 4 * WORDS;
    let (nl_hi, nl_lo) = (nl >> 16, nl & 0xffff);
    #[rustfmt::skip]
    let words: [u32; WORDS as usize] = [
        // _start:
        load | 0x03b0_0000,          //  0  lw/ld  $s0, 0($sp)        argc
        load | 0x03b1_0000 | slot,   //  1  lw/ld  $s1, slot($sp)     argv[0]
        load | 0x03a5_0000 | slot2,  //  2  lw/ld  $a1, 2*slot($sp)   argv[1]
        0x2a08_0002,                 //  3  slti   $8, $s0, 2         argc < 2 ?
        0x1100_0002,                 //  4  beqz   $8, 7f             no: keep argv[1]
        0x0000_0000,                 //  5  nop                       (delay slot)
        0x0000_2825,                 //  6  move   $a1, $zero         yes: no token
        0x0411_0006,                 //  7  bal    print (14)         print argv[1]
        0x0000_0000,                 //  8  nop                       (delay slot)
        0x0411_0004,                 //  9  bal    print (14)         print argv[0]
        0x0220_2825,                 // 10  move   $a1, $s1           (delay slot) the argument
        0x2604_0028,                 // 11  addiu  $a0, $s0, 40       status = 40 + argc
        0x2402_0000 | exit,          // 12  li     $v0, exit
        0x0000_000c,                 // 13  syscall
        // print: write($a1, strlen($a1)) and a newline; $a1 may be NULL (length 0).
        0x10a0_0006,                 // 14  beqz   $a1, 21f           NULL: skip the count
        0x0000_3025,                 // 15  move   $a2, $zero         (delay slot) len = 0
        0x00a6_4000 | add,           // 16  addu/daddu $8, $a1, $a2   p = s + len
        0x9108_0000,                 // 17  lbu    $8, 0($8)
        0x1500_fffd,                 // 18  bnez   $8, 16b            until the NUL byte
        0x24c6_0001,                 // 19  addiu  $a2, $a2, 1        (delay slot) len++
        0x24c6_ffff,                 // 20  addiu  $a2, $a2, -1       undo the count of the NUL
        0x2404_0001,                 // 21  li     $a0, 1             stdout
        0x2402_0000 | write,         // 22  li     $v0, write
        0x0000_000c,                 // 23  syscall                   write(1, s, len)
        0x2404_0001,                 // 24  li     $a0, 1
        0x3c05_0000 | nl_hi,         // 25  lui    $a1, %hi(nl)
        0x34a5_0000 | nl_lo,         // 26  ori    $a1, $a1, %lo(nl)
        0x2406_0001,                 // 27  li     $a2, 1
        0x2402_0000 | write,         // 28  li     $v0, write
        0x0000_000c,                 // 29  syscall                   write(1, "\n", 1)
        0x03e0_0008,                 // 30  jr     $ra
        0x0000_0000,                 // 31  nop                       (delay slot)
    ];
    let mut bytes = super::words(&words, arch.endian);
    bytes.push(b'\n'); // nl
    Some(Code::new(bytes))
}

/// Shared by this worktree's family tests: run the echo probe of `name` under its QEMU with no
/// token (argc = 1, so argv[1] is the NULL that ends argv); return (exit code, stdout).
#[cfg(test)]
pub(super) fn run_without_token(name: &str) -> (Option<i32>, String) {
    let table = crate::arch::ArchTable::embedded();
    let arch = table.find(name).expect("arch in table");
    let probe = crate::probe::program(arch).expect("probe exists");
    crate::probe::run_under_qemu(arch, &probe, &["-0", "bare-argv0", "PROBE"])
}

#[cfg(test)]
mod tests {
    use super::run_without_token;

    /// Every ABI and byte order has a probe, and with no token it prints an empty line and
    /// argv[0] and exits 41.
    #[test]
    fn mips_probes_run_without_a_token() {
        for name in [
            "mips",
            "mipsle",
            "mipsn32",
            "mipsn32el",
            "mips64",
            "mips64le",
        ] {
            assert_eq!(
                run_without_token(name),
                (Some(41), "\nbare-argv0\n".to_string()),
                "{name}"
            );
        }
    }
}
