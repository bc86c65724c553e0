//! The table proven against the kernel's rule: every row matches its own header, no two
//! rows share one, the mask decides, names resolve.

use super::*;

/// A 64-byte ELF header built from an arch's own identity fields.
fn header_for(a: &Arch, e_type: u16, osabi: u8) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = if a.class == 64 { 2 } else { 1 };
    h[5] = if a.endian == Endian::Little { 1 } else { 2 };
    h[6] = 1;
    h[7] = osabi;
    // (offset, value, width), written in the arch's byte order.
    let flags_at = if a.class == 64 { 48 } else { 36 };
    let fields = [
        (16, u32::from(e_type), 2),
        (18, u32::from(a.machine[0]), 2),
        (20, 1, 4),
        (flags_at, a.flags, 4),
    ];
    for (at, v, n) in fields {
        let bytes = match a.endian {
            Endian::Little => v.to_le_bytes()[..n].to_vec(),
            Endian::Big => v.to_be_bytes()[4 - n..].to_vec(),
        };
        h[at..at + n].copy_from_slice(&bytes);
    }
    h
}

#[test]
fn embedded_table_loads_and_has_every_kernel_row() {
    let t = ArchTable::embedded();
    let qemu: BTreeSet<&str> = t.iter().filter_map(|a| a.qemu.as_deref()).collect();
    for cpu in [
        "i386",
        "x86_64",
        "alpha",
        "arm",
        "armeb",
        "aarch64",
        "aarch64_be",
        "sparc",
        "sparc32plus",
        "sparc64",
        "ppc",
        "ppc64",
        "ppc64le",
        "m68k",
        "mips",
        "mipsel",
        "mipsn32",
        "mipsn32el",
        "mips64",
        "mips64el",
        "sh4",
        "sh4eb",
        "s390x",
        "hppa",
        "riscv32",
        "riscv64",
        "xtensa",
        "xtensaeb",
        "microblaze",
        "microblazeel",
        "or1k",
        "hexagon",
        "loongarch64",
    ] {
        assert!(qemu.contains(cpu), "table lacks qemu cpu {cpu}");
    }
}

#[test]
fn every_row_matches_its_own_header_under_its_mask() {
    let t = ArchTable::embedded();
    for a in t.iter() {
        for e_type in [2u16, 3] {
            for osabi in [0u8, 3] {
                let h = header_for(a, e_type, osabi);
                assert!(
                    a.matches(&h),
                    "{} does not match its own header (type {e_type}, osabi {osabi})",
                    a.name
                );
            }
        }
        // Relocatable objects and core files are not programs: no rule may take them.
        assert!(
            !a.matches(&header_for(a, 1, 0)),
            "{} matches ET_REL",
            a.name
        );
        assert!(
            !a.matches(&header_for(a, 4, 0)),
            "{} matches ET_CORE",
            a.name
        );
    }
}

/// Pairs whose rules legitimately take the same header. Empty: each header has one owner.
const DOCUMENTED_OVERLAPS: &[(&str, &str)] = &[];

#[test]
fn no_two_rows_match_the_same_header() {
    let t = ArchTable::embedded();
    for a in t.iter() {
        let h = header_for(a, 2, 0);
        for b in t.iter().filter(|b| b.name != a.name) {
            if b.matches(&h) {
                assert!(
                    DOCUMENTED_OVERLAPS.contains(&(a.name.as_str(), b.name.as_str())),
                    "header of {} is also matched by {}",
                    a.name,
                    b.name
                );
            }
        }
        assert_eq!(
            t.match_header(&h).map(|x| x.name.as_str()),
            Some(a.name.as_str())
        );
    }
}

#[test]
fn magic_is_compared_under_the_mask() {
    // i386 carries a bit outside its mask (EI_CLASS byte masked 0xfe would allow 0/1);
    // flipping a masked-out bit must not change the verdict, flipping a masked-in one must.
    let t = ArchTable::embedded();
    for a in t.iter() {
        let h = header_for(a, 2, 0);
        for (i, m) in a.rule.mask.iter().enumerate() {
            for bit in 0..8 {
                let mut g = h.clone();
                g[i] ^= 1 << bit;
                assert_eq!(
                    a.matches(&g),
                    m & (1 << bit) == 0,
                    "{} byte {i} bit {bit}",
                    a.name
                );
            }
        }
    }
}

#[test]
fn identity_lookup_agrees_with_rules() {
    let t = ArchTable::embedded();
    for a in t.iter() {
        let got = t
            .by_identity(a.class, a.endian, a.machine[0], a.flags)
            .map(|x| &x.name);
        assert_eq!(got, Some(&a.name));
    }
}

#[test]
fn aliases_resolve() {
    let t = ArchTable::embedded();
    for (alias, want) in [
        ("aarch64", "arm64"),
        ("linux/arm64", "arm64"),
        ("armhf", "arm"),
        ("armel", "arm"),
        ("linux/arm/v7", "arm"),
        ("arm/v6", "arm"),
        ("ppc64el", "ppc64le"),
        ("i386", "386"),
        ("x86_64", "amd64"),
        ("mips64el", "mips64le"),
        ("loongarch64", "loong64"),
        ("qemu-aarch64", "arm64"),
        ("AMD64", "amd64"),
        ("mipsel", "mipsle"),
    ] {
        assert_eq!(
            t.lookup(alias).map(|a| a.name.as_str()).ok(),
            Some(want),
            "{alias}"
        );
    }
}

#[test]
fn unknown_name_lists_known_names() {
    let t = ArchTable::embedded();
    let e = t.lookup("vax").unwrap_err().to_string();
    assert!(
        e.contains("'vax'") && e.contains("arm64") && e.contains("riscv64"),
        "{e}"
    );
    assert!(t.lookup_list("arm64,nope").is_err());
    assert!(t.lookup_list(" , ").is_err());
    assert_eq!(
        t.lookup_list("arm64,aarch64").map(|v| v.len()).ok(),
        Some(1)
    );
}

#[test]
fn bad_tables_are_refused_with_the_reason() {
    let row = |magic: &str, mask: &str| {
        format!(
            "[[arch]]\nname='x'\nqemu='x'\nplatform='linux/x'\nclass=32\nendian='little'\nmachine=[1]\nflags=0\nfamily='x'\nmagic='{magic}'\nmask='{mask}'\n"
        )
    };
    let e = ArchTable::parse(&row("7f45", "ff"), "t")
        .unwrap_err()
        .to_string();
    assert!(e.contains("same length"), "{e}");
    let e = ArchTable::parse(&row("7g", "ff"), "t")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a hex byte"), "{e}");
    let e = ArchTable::parse("[[arch]]\nname='x'\nbogus=1\n", "t")
        .unwrap_err()
        .to_string();
    assert!(e.contains("bogus"), "{e}");
    let two = format!("{}{}", row("7f", "ff"), row("7f", "ff"));
    let e = ArchTable::parse(&two, "t").unwrap_err().to_string();
    assert!(e.contains("used by both"), "{e}");
}

#[test]
fn host_machine_names_map() {
    let t = ArchTable::embedded();
    for (m, little, want) in [
        ("x86_64", true, "amd64"),
        ("aarch64", true, "arm64"),
        ("armv7l", true, "arm"),
        ("i686", true, "386"),
        ("mips64", true, "mips64le"),
        ("mips64", false, "mips64"),
        ("ppc64le", true, "ppc64le"),
        ("ppc64", false, "ppc64"),
        ("s390x", false, "s390x"),
        ("riscv64", true, "riscv64"),
        ("loongarch64", true, "loong64"),
    ] {
        assert_eq!(
            Host::arch_for_machine(&t, m, little).as_deref(),
            Some(want),
            "{m}"
        );
    }
}

/// Found by the arch_table fuzz target: a multi-byte character in a magic or mask put a
/// two-byte slice boundary inside it, and `--arch-table` panicked instead of refusing
/// (the hex itself is tested in `rule`).
#[test]
fn regression_hex_with_a_multibyte_character_is_refused_not_a_panic() {
    let table = EMBEDDED_TABLE.replacen("magic = \"7f454c46", "magic = \"7\u{fffd}454c46", 1);
    let e = ArchTable::parse(&table, "t").expect_err("refused");
    assert!(e.to_string().contains("no hex digit"), "{e}");
}

#[test]
fn lists_take_all_and_exclusions_in_order() {
    let t = ArchTable::embedded();
    let names = |list: &str| -> Vec<String> {
        t.lookup_list(list)
            .expect(list)
            .iter()
            .map(|a| a.name.clone())
            .collect()
    };
    let all = names("all");
    let without = names("all,-riscv64,-s390x");
    assert_eq!(without.len(), all.len() - 2);
    assert!(!without.contains(&"riscv64".to_string()));
    assert_eq!(names("arm64,riscv64,-riscv64"), ["arm64"]);
    assert_eq!(names("all,-linux/arm64,aarch64").len(), all.len());
    let e = t.lookup_list("-riscv64").unwrap_err().to_string();
    assert!(e.contains("all,-riscv64"), "{e}");
    assert!(t.lookup_list("all,-vax").is_err());
    assert!(t.lookup_list("arm64,-arm64").is_err(), "nothing left");
    assert!(ArchTable::mentions_all(["arm64", " ALL "]));
    assert!(!ArchTable::mentions_all("arm64,-riscv64".split(',')));
}
