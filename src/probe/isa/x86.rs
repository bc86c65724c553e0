//! Echo probes for x86: amd64 and x32 share one long-mode program (x32 differs only in pointer
//! width and syscall numbers); 386 has its own, since it calls the kernel through `int 0x80`
//! with arguments in other registers.
//!
//! All three walk the same plan: `rbx`/`esi` points at the argv[1] slot of the initial stack,
//! each pass writes the string it points at (none when the slot is NULL) and a newline, then
//! steps back one slot; after argv[0] it exits with `40 + argc`.

use crate::arch::Arch;
use crate::probe::{Code, code_address};

pub(super) fn code(arch: &Arch) -> Option<Code> {
    let bytes = match arch.name.as_str() {
        "amd64" => long_mode(false),
        "x32" => long_mode(true),
        "386" => i386(code_address(arch)),
        _ => return None,
    };
    Some(Code::new(bytes))
}

/// One opcode byte followed by a little-endian 32-bit immediate.
fn imm32(op: u8, v: u32) -> [u8; 5] {
    let b = v.to_le_bytes();
    [op, b[0], b[1], b[2], b[3]]
}

/// amd64, or x32 when `x32`. On x32 the initial stack holds 32-bit argc and argv pointers
/// (the kernel builds it like a compat process's), and every syscall number carries
/// `__X32_SYSCALL_BIT`. The pointer load keeps its length by using an empty REX prefix (0x40)
/// instead of REX.W (0x48), so every jump offset is shared.
fn long_mode(x32: bool) -> Vec<u8> {
    let (ptr, rex, sys_bit) = if x32 {
        (4u8, 0x40u8, 0x4000_0000u32)
    } else {
        (8, 0x48, 0)
    };
    let (write, exit) = (1 | sys_bit, 60 | sys_bit);
    let parts: &[&[u8]] = &[
        &[0x48, 0x8d, 0x5c, 0x24, 2 * ptr], // 00: lea  rbx, [rsp + 2*ptr]  ; argv[1] slot
        // 05 top:
        &[rex, 0x8b, 0x33],  // 05: mov  rsi, [rbx]  (x32: mov esi, [rbx])
        &[0x31, 0xd2],       // 08: xor  edx, edx  ; length
        &[0x48, 0x85, 0xf6], // 0a: test rsi, rsi
        &[0x74, 0x17],       // 0d: jz   nl (0x26)  ; NULL: no string
        // 0f len:
        &[0x80, 0x3c, 0x16, 0x00], // 0f: cmp  byte [rsi + rdx], 0
        &[0x74, 0x05],             // 13: je   wr (0x1a)
        &[0x48, 0xff, 0xc2],       // 15: inc  rdx
        &[0xeb, 0xf5],             // 18: jmp  len (0x0f)
        // 1a wr:
        &imm32(0xb8, write), // 1a: mov  eax, write
        &imm32(0xbf, 1),     // 1f: mov  edi, 1
        &[0x0f, 0x05],       // 24: syscall  ; write(1, rsi, rdx)
        // 26 nl:
        &imm32(0xb8, write),                         // 26: mov  eax, write
        &imm32(0xbf, 1),                             // 2b: mov  edi, 1
        &[0x48, 0x8d, 0x35, 0x1d, 0x00, 0x00, 0x00], // 30: lea  rsi, [rip + 0x1d] (newline, 0x54)
        &imm32(0xba, 1),                             // 37: mov  edx, 1
        &[0x0f, 0x05],                               // 3c: syscall  ; write(1, "\n", 1)
        &[0x48, 0x83, 0xeb, ptr],                    // 3e: sub  rbx, ptr
        &[0x48, 0x39, 0xe3],                         // 42: cmp  rbx, rsp
        &[0x77, 0xbe],                               // 45: ja   top (0x05)  ; argv[0] still to do
        &[0x8b, 0x3c, 0x24],                         // 47: mov  edi, [rsp]  ; argc
        &[0x83, 0xc7, 40],                           // 4a: add  edi, 40
        &imm32(0xb8, exit),                          // 4d: mov  eax, exit
        &[0x0f, 0x05],                               // 52: syscall  ; exit(40 + argc)
        b"\n",                                       // 54 newline:
    ];
    parts.concat()
}

/// 386: the code has no PC-relative addressing, so the newline's absolute address is built in
/// from `base`, where the first byte is loaded. `int 0x80` keeps every register but eax.
fn i386(base: u64) -> Vec<u8> {
    const NEWLINE: u64 = 0x4b;
    let newline = u32::try_from(base + NEWLINE).expect("386 code address fits in 32 bits");
    let parts: &[&[u8]] = &[
        &[0x8d, 0x74, 0x24, 0x08], // 00: lea  esi, [esp + 8]  ; argv[1] slot
        // 04 top:
        &[0x8b, 0x0e], // 04: mov  ecx, [esi]
        &[0x31, 0xd2], // 06: xor  edx, edx  ; length
        &[0x85, 0xc9], // 08: test ecx, ecx
        &[0x74, 0x15], // 0a: jz   nl (0x21)  ; NULL: no string
        // 0c len:
        &[0x80, 0x3c, 0x11, 0x00], // 0c: cmp  byte [ecx + edx], 0
        &[0x74, 0x03],             // 10: je   wr (0x15)
        &[0x42],                   // 12: inc  edx
        &[0xeb, 0xf7],             // 13: jmp  len (0x0c)
        // 15 wr:
        &imm32(0xb8, 4), // 15: mov  eax, 4  ; write
        &imm32(0xbb, 1), // 1a: mov  ebx, 1
        &[0xcd, 0x80],   // 1f: int  0x80  ; write(1, ecx, edx)
        // 21 nl:
        &imm32(0xb8, 4),       // 21: mov  eax, 4
        &imm32(0xbb, 1),       // 26: mov  ebx, 1
        &imm32(0xb9, newline), // 2b: mov  ecx, newline  ; absolute address of 0x4b
        &imm32(0xba, 1),       // 30: mov  edx, 1
        &[0xcd, 0x80],         // 35: int  0x80  ; write(1, "\n", 1)
        &[0x83, 0xee, 0x04],   // 37: sub  esi, 4
        &[0x39, 0xe6],         // 3a: cmp  esi, esp
        &[0x77, 0xc6],         // 3c: ja   top (0x04)  ; argv[0] still to do
        &[0x8b, 0x1c, 0x24],   // 3e: mov  ebx, [esp]  ; argc
        &[0x83, 0xc3, 40],     // 41: add  ebx, 40
        &imm32(0xb8, 1),       // 44: mov  eax, 1  ; exit
        &[0xcd, 0x80],         // 49: int  0x80  ; exit(40 + argc)
        b"\n",                 // 4b newline:
    ];
    let bytes = parts.concat();
    debug_assert_eq!(bytes[NEWLINE as usize], b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x32_is_amd64_with_narrow_pointers_and_x32_syscalls() {
        let (a, x) = (long_mode(false), long_mode(true));
        assert_eq!(a.len(), x.len());
        let differ: Vec<usize> = (0..a.len()).filter(|&i| a[i] != x[i]).collect();
        // argv[1] displacement, REX of the pointer load, three syscall numbers' top bytes,
        // the slot step.
        assert_eq!(differ, [4, 5, 0x1e, 0x2a, 0x41, 0x51]);
        assert_eq!(*a.last().unwrap(), b'\n');
        assert_eq!(
            a[0x30 + 7 + 0x1d],
            b'\n',
            "lea rsi, [rip + 0x1d] hits the newline"
        );
    }
}
