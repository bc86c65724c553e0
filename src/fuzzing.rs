//! What the fuzz targets (`fuzz/`) run, kept in the library so that a unit test can run the
//! same code on stable over a few thousand inputs. Each function takes arbitrary bytes and
//! must neither panic nor hang nor allocate without bound; where a result has a property that
//! must hold (a registration that passed validation fits the kernel), it is asserted, so a
//! broken property is a crash the fuzzer reports.
//!
//! Compiled only for tests and under cargo-fuzz (`--cfg fuzzing`).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use crate::arch::{ArchTable, Host};
use crate::binfmt::registration::{Registration, from_entry};
use crate::binfmt::{Entry, Snapshot};
use crate::format::{self, HEAD_BYTES};
use crate::inspect::Inspector;
use crate::machine::Fake;
use crate::rule::{MAX_MAGIC, MAX_REGISTER, MIN_REGISTER, MagicRule, encode_hex};

/// Format sniffing and every reader of executables, on the bytes alone and through a file
/// as `inspect` reads it.
pub fn inspect_bytes(data: &[u8]) {
    let table = table();
    let head = &data[..data.len().min(HEAD_BYTES)];
    let _ = format::sniff(head);
    let _ = format::macho_slices(head);
    let _ = format::pe_info(head);
    if let Some(sb) = format::shebang(head) {
        assert!(!sb.interpreter.is_empty());
        assert!(!sb.interpreter.contains([' ', '\t', '\n']));
    }
    if let Ok(info) = crate::elf::read_bytes(data) {
        let naming = crate::elf::name(&info, table);
        let _ = (info.type_name(), info.os_abi_name(), info.is_static());
        if let Some(arch) = naming.arch {
            assert!(
                table.find(&arch).is_some(),
                "named an arch not in the table"
            );
        }
        if let Some(interp) = &info.interpreter {
            assert!(interp.len() <= 4096, "loader path longer than the bound");
        }
    }
    let snap = snapshot();
    let _ = snap.handler_for(Path::new("/x/fuzz.jar"), data);

    // The whole of `inspect`, as the command runs it on a file, on a machine that has no
    // second ABI to probe for (riscv64), so inspecting never forks a probe.
    let machine = Fake::new()
        .machine_name("riscv64")
        .binfmt_snapshot(snap.clone())
        .file("/fuzz/file", data.to_vec(), 0o755);
    let inspector = Inspector::new(&machine, table, snap);
    let r = inspector.inspect(Path::new("/fuzz/file"));
    assert!(!r.unreadable, "{:?}", r.error);
    let _ = serde_json::to_string(&r).unwrap();
}

/// An entry file as the kernel shows it (or anything pretending to be one). What parses must
/// survive being turned back into a registration and compared.
pub fn entry_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(entry) = Entry::parse("fuzz", &text) else {
        return;
    };
    assert!(!entry.interpreter.contains('\n'));
    let buf = crate::rule::kernel_buffer(data);
    let _ = entry.rule.matches(Path::new("/a/b.c"), &buf);
    if let Some(reg) = from_entry(&entry) {
        let _ = reg.register_string();
        if reg.validate().is_ok() {
            registration_properties(&reg);
        }
    }
}

/// A registration built from the bytes, put through validation; one that passes must be a
/// register string the kernel takes as one rule with exactly these fields.
pub fn registration(data: &[u8]) {
    let mut r = Bytes(data);
    let reg = Registration {
        rule: MagicRule {
            offset: usize::from(r.byte()) + usize::from(r.byte() & 1) * 200,
            magic: r.take(300).to_vec(),
            mask: r.take(300).to_vec(),
        },
        flags: String::from_utf8_lossy(r.take(6)).into_owned(),
        name: String::from_utf8_lossy(r.take(300)).into_owned(),
        interpreter: String::from_utf8_lossy(r.take(2100)).into_owned(),
    };
    let other = Registration {
        rule: MagicRule {
            offset: usize::from(r.byte()),
            magic: r.take(40).to_vec(),
            mask: r.take(40).to_vec(),
        },
        ..reg.clone()
    };
    let _ = reg.register_string();
    if reg.validate().is_ok() {
        registration_properties(&reg);
        if other.validate().is_ok() {
            assert_eq!(
                reg.rule.overlaps(&other.rule),
                other.rule.overlaps(&reg.rule),
                "overlap is symmetric"
            );
        }
    }
}

/// The architecture table as `--arch-table` reads it. A table that loads must answer every
/// question the commands ask of it.
pub fn arch_table(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(t) = ArchTable::parse(&text, "fuzz") else {
        return;
    };
    for a in t.iter() {
        let found = t.find(&a.name).unwrap();
        assert_eq!(found.name, a.name, "a name resolves to another arch");
        if let Some(name) = a.entry_name() {
            crate::rule::check_entry_name(&name).unwrap();
        }
        let _ = (a.default_platform(), a.platforms(), a.matches(data));
        let _ = t.by_identity(a.class, a.endian, a.machine[0], a.flags);
        let _ = crate::probe::elf_image(a, data.get(..16).unwrap_or_default());
    }
    let _ = t.lookup_list("all");
    let _ = t.lookup_list(&text);
    let _ = t.match_header(data);
    let _ = Host::arch_for_machine(&t, &text, true);
}

/// `init`'s TOML config. Errors must be one line that names where; a config that loads must
/// answer every question `init` asks of it.
pub fn init_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match crate::config::Config::parse(&text, "fuzz") {
        Ok(c) => {
            let _ = (c.arches(table()), c.interpreters(table()), c.all());
            let k = &c.keep_running;
            let _ = (c.qemu_paths(), k.interval(), k.readiness_file(), c.origin());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `scan`'s OCI index, manifests and configs, and `docker save`'s manifest.json.
pub fn oci_json(data: &[u8]) {
    crate::scan::oci::fuzz_documents(data);
}

/// `scan`'s tar reader on a layer: plain, and through the decompressor its first bytes pick
/// (read no further than 1 MiB, as the 64 GiB expansion cap is by design, not a hang).
pub fn tar_stream(data: &[u8]) {
    use std::io::Read;
    let progress = crate::scan::Progress::default();
    let mut entries = 0usize;
    let plain = crate::scan::archive::Input::reader(data);
    let _ = crate::scan::archive::read_entries(table(), plain, "fuzz", &progress, |e| {
        entries += 1;
        if let crate::scan::layers::LayerEntry::File(p, _)
        | crate::scan::layers::LayerEntry::Dir(p) = &e
        {
            assert!(
                p.starts_with('/') && !p.split('/').any(|c| c == ".."),
                "{p:?}"
            );
        }
    });
    assert!(entries <= data.len() / 512 + 1, "more members than blocks");
    if let Ok((reader, _)) = crate::scan::archive::decompress(data, "fuzz") {
        let _ = crate::scan::archive::read_entries(
            table(),
            crate::scan::archive::Input::reader(reader.take(1 << 20)),
            "fuzz",
            &progress,
            |_| {},
        );
    }
    let path = crate::scan::image_path(data);
    assert!(path.starts_with('/') && !path.split('/').any(|c| c == ".."));
}

/// What the kernel checks of a register string, and what our own parsing of the entry it
/// makes must give back.
fn registration_properties(reg: &Registration) {
    let s = reg.register_string();
    assert!((MIN_REGISTER..=MAX_REGISTER).contains(&s.len()), "{s:?}");
    assert!(!s.chars().any(char::is_control), "{s:?}");
    let fields: Vec<&str> = s.split(':').collect();
    assert_eq!(fields.len(), 8, "one rule, seven delimiters: {s:?}");
    assert_eq!(
        (fields[0], fields[1], fields[2]),
        ("", reg.name.as_str(), "M")
    );
    assert!(!reg.name.contains('/') && reg.name != "." && reg.name != "..");
    let rule = &reg.rule;
    assert_eq!(fields[3].parse::<usize>().ok(), Some(rule.offset));
    assert!(rule.offset + rule.magic.len() <= MAX_MAGIC);
    assert_eq!(unescape(fields[4]), rule.magic);
    assert_eq!(unescape(fields[5]), rule.mask);
    assert_eq!(fields[6], reg.interpreter);
    assert!(fields[7].chars().all(|c| "POCF".contains(c)));
    // The entry file the kernel will show for it parses back to the same registration, so a
    // second install finds it unchanged.
    let shown = kernel_entry_text(reg);
    let entry = Entry::parse(&reg.name, &shown).unwrap_or_else(|e| panic!("{e}: {shown:?}"));
    assert!(reg.same_as(&entry), "{shown:?}");
    assert!(reg.overlaps(&entry));
}

/// The entry file binfmt_misc writes for a registration (fs/binfmt_misc.c, entry_status).
pub fn kernel_entry_text(reg: &Registration) -> String {
    format!(
        "enabled\ninterpreter {}\nflags: {}\noffset {}\nmagic {}\nmask {}\n",
        reg.interpreter,
        crate::binfmt::registration::normalise_flags(&reg.flags),
        reg.rule.offset,
        encode_hex(&reg.rule.magic),
        encode_hex(&reg.rule.mask)
    )
}

fn unescape(field: &str) -> Vec<u8> {
    field
        .split("\\x")
        .skip(1)
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect()
}

struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }

    /// A length-prefixed piece: one byte of length scaled to `max`, then that many bytes.
    fn take(&mut self, max: usize) -> &'a [u8] {
        let n = usize::from(self.byte()) * max / 255;
        let n = n.min(self.0.len());
        let (piece, rest) = self.0.split_at(n);
        self.0 = rest;
        piece
    }
}

fn table() -> &'static ArchTable {
    static TABLE: std::sync::OnceLock<ArchTable> = std::sync::OnceLock::new();
    TABLE.get_or_init(ArchTable::embedded)
}

/// A binfmt_misc with an arm64 handler and an extension handler, both enabled.
fn snapshot() -> Snapshot {
    let arm64 = "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: PF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";
    let jar = "enabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n";
    Snapshot {
        mounted: true,
        enabled: true,
        entries: vec![
            Entry::parse("qemu-aarch64", arm64).unwrap(),
            Entry::parse("jar", jar).unwrap(),
        ],
        unreadable: Vec::new(),
    }
}

/// A one-member tar stream holding a short ELF header, for seeds.
pub fn tar_seed() -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..10].copy_from_slice(b"bin/probe\0");
    header[100..108].copy_from_slice(b"0000755\0");
    header[124..136].copy_from_slice(b"00000000100\0");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    let mut body = [0u8; 512];
    body[..4].copy_from_slice(b"\x7fELF");
    out.extend_from_slice(&body);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    type Target = fn(&[u8]);

    /// A cheap stand-in for the fuzzer in the ordinary suite: every target over its seeds
    /// and a few thousand pseudo-random mutations of them (a fixed xorshift, so runs repeat).
    #[test]
    fn every_fuzz_target_survives_mutated_seeds() {
        let arm64 = crate::probe::program(table().find("arm64").unwrap()).unwrap();
        let seeds: Vec<(Target, Vec<Vec<u8>>)> = vec![
            (
                inspect_bytes,
                vec![arm64.clone(), b"#!/bin/sh -e\n".to_vec(), b"MZ".to_vec()],
            ),
            (
                entry_file,
                vec![
                    kernel_entry_text(&Registration {
                        name: "qemu-aarch64".into(),
                        rule: MagicRule {
                            offset: 0,
                            magic: arm64[..20].to_vec(),
                            mask: vec![0xff; 20],
                        },
                        interpreter: "/usr/bin/qemu-aarch64-static".into(),
                        flags: "PF".into(),
                    })
                    .into_bytes(),
                ],
            ),
            (registration, vec![vec![0x80; 64], (0..=255).collect()]),
            (
                arch_table,
                vec![crate::arch::EMBEDDED_TABLE.as_bytes()[..2000].to_vec()],
            ),
            (
                oci_json,
                vec![
                    br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","platform":{"os":"linux","architecture":"arm64"}}]}"#
                        .to_vec(),
                ],
            ),
            (tar_stream, vec![tar_seed()]),
            (
                init_config,
                vec![
                    include_bytes!("../configs/binfmt-setup.toml").to_vec(),
                    b"architectures = [\"arm64\"]\n[interpreters]\narm64 = \"/x\"\n".to_vec(),
                ],
            ),
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for (target, seeds) in seeds {
            for seed in &seeds {
                target(seed);
                for _ in 0..300 {
                    let mut m = seed.clone();
                    for _ in 0..1 + next() % 8 {
                        if m.is_empty() {
                            break;
                        }
                        let at = (next() % m.len() as u64) as usize;
                        match next() % 3 {
                            0 => m[at] = next() as u8,
                            1 => m.truncate(at),
                            _ => m.insert(at, next() as u8),
                        }
                    }
                    target(&m);
                }
            }
        }
    }

    #[test]
    fn the_tar_seed_is_a_tar_stream() {
        let mut files = Vec::new();
        crate::scan::archive::read_entries(
            table(),
            crate::scan::archive::Input::reader(&tar_seed()[..]),
            "seed",
            &crate::scan::Progress::default(),
            |e| files.push(format!("{e:?}")),
        )
        .expect("a tar stream");
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].contains("/bin/probe"), "{files:?}");
    }
}
