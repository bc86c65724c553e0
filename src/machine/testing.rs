//! Test material for fake machines: the embedded arch table, programs with a loader and
//! shared libraries (`probe::program` builds the static ones), and binfmt_misc entries.

use crate::arch::{Arch, ArchTable, Endian};
use crate::binfmt::{Entry, Registration, Rule};

/// The embedded table, for as long as the tests run.
pub fn table() -> &'static ArchTable {
    static TABLE: std::sync::OnceLock<ArchTable> = std::sync::OnceLock::new();
    TABLE.get_or_init(ArchTable::embedded)
}

pub fn arch(name: &str) -> &'static Arch {
    table()
        .find(name)
        .unwrap_or_else(|| panic!("no arch {name}"))
}

/// A static program the kernel (or QEMU) runs: the arch's probe.
pub fn program(name: &str) -> Vec<u8> {
    crate::probe::program(arch(name)).unwrap_or_else(|| panic!("no probe for {name}"))
}

/// A dynamically linked 64-bit program for `name`: PT_INTERP `loader`, and DT_NEEDED for
/// each of `needed`, in one PT_LOAD segment.
pub fn dynamic_program(name: &str, loader: &str, needed: &[&str]) -> Vec<u8> {
    let a = arch(name);
    assert_eq!(a.class, 64, "64-bit programs only");
    const BASE: u64 = 0x40_0000;
    let le = a.endian == Endian::Little;
    let u16b = |v: u16| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let u32b = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let u64b = |v: u64| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let (ehsize, phsize, phnum) = (64u64, 56u64, 3u64);
    // After the headers: the loader's path, the string table, then the dynamic section.
    let interp_at = ehsize + phsize * phnum;
    let mut interp = loader.as_bytes().to_vec();
    interp.push(0);
    let strtab_at = interp_at + interp.len() as u64;
    let mut strtab = vec![0u8];
    let mut offsets = Vec::new();
    for lib in needed {
        offsets.push(strtab.len() as u64);
        strtab.extend_from_slice(lib.as_bytes());
        strtab.push(0);
    }
    let dynamic_at = (strtab_at + strtab.len() as u64).next_multiple_of(8);
    let (dt_needed, dt_strtab, dt_strsz) = (1u64, 5u64, 10u64);
    let mut dynamic: Vec<(u64, u64)> = offsets.iter().map(|o| (dt_needed, *o)).collect();
    dynamic.push((dt_strtab, BASE + strtab_at));
    dynamic.push((dt_strsz, strtab.len() as u64));
    dynamic.push((0, 0));
    let total = dynamic_at + 16 * dynamic.len() as u64;

    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF");
    out.extend_from_slice(&[2, if le { 1 } else { 2 }, 1]);
    out.extend_from_slice(&[0; 9]);
    out.extend_from_slice(&u16b(2)); // ET_EXEC
    out.extend_from_slice(&u16b(a.machine[0]));
    out.extend_from_slice(&u32b(1));
    out.extend_from_slice(&u64b(BASE + total)); // e_entry: never run
    out.extend_from_slice(&u64b(ehsize));
    out.extend_from_slice(&u64b(0));
    out.extend_from_slice(&u32b(a.flags));
    out.extend_from_slice(&u16b(ehsize as u16));
    out.extend_from_slice(&u16b(phsize as u16));
    out.extend_from_slice(&u16b(phnum as u16));
    out.extend_from_slice(&u16b(64));
    out.extend_from_slice(&u16b(0));
    out.extend_from_slice(&u16b(0));
    let mut phdr = |kind: u32, offset: u64, size: u64| {
        out.extend_from_slice(&u32b(kind));
        out.extend_from_slice(&u32b(4 | 1)); // R+X
        out.extend_from_slice(&u64b(offset));
        out.extend_from_slice(&u64b(BASE + offset));
        out.extend_from_slice(&u64b(BASE + offset));
        out.extend_from_slice(&u64b(size));
        out.extend_from_slice(&u64b(size));
        out.extend_from_slice(&u64b(if kind == 1 { 0x1000 } else { 8 }));
    };
    let (pt_load, pt_dynamic, pt_interp) = (1, 2, 3);
    phdr(pt_load, 0, total);
    phdr(pt_interp, interp_at, interp.len() as u64);
    phdr(pt_dynamic, dynamic_at, 16 * dynamic.len() as u64);
    out.extend_from_slice(&interp);
    out.extend_from_slice(&strtab);
    out.resize(dynamic_at as usize, 0);
    for (tag, value) in dynamic {
        out.extend_from_slice(&u64b(tag));
        out.extend_from_slice(&u64b(value));
    }
    out
}

/// The entry `binfmt-setup install` makes for `name` with `interpreter` and `flags`.
pub fn entry(name: &str, interpreter: &str, flags: &str, enabled: bool) -> Entry {
    let reg = Registration::for_arch(arch(name), interpreter.into(), flags.into());
    Entry {
        name: reg.name,
        enabled,
        interpreter: reg.interpreter,
        flags: reg.flags,
        rule: Rule::Magic {
            rule: reg.rule,
            mask_shown: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_program_names_its_loader_and_libraries() {
        let bytes = dynamic_program("amd64", "/lib64/ld-linux-x86-64.so.2", &["libc.so.6"]);
        let info = crate::elf::read_bytes(&bytes).expect("elf");
        assert_eq!(
            info.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert!(!info.is_static());
        let parsed = goblin::elf::Elf::parse(&bytes).expect("goblin");
        assert_eq!(parsed.libraries, vec!["libc.so.6"]);
        assert!(arch("amd64").matches(&bytes));
    }
}
