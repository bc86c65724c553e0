//! Echo-probe machine code, one file per CPU family. Each family's `code` returns `None` for
//! arches it has no probe for yet.

mod alpha;
mod arm;
mod hexagon;
mod hppa;
mod loongarch;
mod m68k;
mod microblaze;
mod mips;
mod or1k;
mod power;
mod riscv;
mod s390x;
mod sh;
mod sparc;
mod x86;
mod xtensa;

use super::Code;
use crate::arch::{Arch, Endian};

/// 32-bit instruction words laid out in `endian` byte order.
fn words(ws: &[u32], endian: Endian) -> Vec<u8> {
    ws.iter()
        .flat_map(|w| match endian {
            Endian::Little => w.to_le_bytes(),
            Endian::Big => w.to_be_bytes(),
        })
        .collect()
}

/// The echo probe's machine code for `arch`, by family.
pub(super) fn code(arch: &Arch) -> Option<Code> {
    match arch.family.as_str() {
        "x86" => x86::code(arch),
        "arm" => arm::code(arch),
        "ppc" => power::code(arch),
        "s390" => s390x::code(arch),
        "riscv" => riscv::code(arch),
        "loongarch" => loongarch::code(arch),
        "mips" => mips::code(arch),
        "sparc" => sparc::code(arch),
        "m68k" => m68k::code(arch),
        "sh" => sh::code(arch),
        "alpha" => alpha::code(arch),
        "hppa" => hppa::code(arch),
        "xtensa" => xtensa::code(arch),
        "microblaze" => microblaze::code(arch),
        "or1k" => or1k::code(arch),
        "hexagon" => hexagon::code(arch),
        _ => None,
    }
}
