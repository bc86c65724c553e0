//! A 32-bit ARM program read once, front to back, from a stream that cannot go back (a member
//! of a compressed tar). Its variant is in the attributes section, which the section header
//! table locates; the table is near the end, so the stream has usually passed the section
//! by the time its place is known. Holding the whole member would cost its size in memory;
//! instead, as the member goes by, the few spans the verdict can need are kept:
//!
//! - the section header table, whose place the ELF header gives;
//! - every place an attributes section can begin: the format byte `A`, a 4-byte length, and
//!   the first subsection's vendor `aeabi` (what every toolchain writes first), kept up to
//!   the most the ELF reader takes of the section;
//! - the attributes section itself, once the table is known, should it lie further on.
//!
//! At the end the ELF reader reads from these spans as from the file; a read outside them
//! fails, which it treats as a missing section (the float ABI bits of `e_flags` then name
//! the variant), as it does for a damaged one. Memory stays under a few MiB whatever the
//! member's size.

use std::io::{self, Read};

use goblin::container::{Container, Ctx};
use goblin::elf::section_header::SectionHeader;

use crate::elf::ReadAt;

/// The most of an attributes section the ELF reader takes (`elf::MAX_NOTE`).
const SECTION_MAX: u64 = 64 * 1024;
/// Section header tables bigger than this are refused as corrupt (`elf::MAX_TABLE_BYTES`).
const TABLE_MAX: u64 = 1 << 20;
/// Places that look like the start of an attributes section, kept at most.
const CANDIDATES_MAX: usize = 16;
const SHT_ARM_ATTRIBUTES: u32 = 0x7000_0003;
/// The first subsection's vendor name, five bytes after the section's start.
const VENDOR: &[u8] = b"aeabi\0";
/// Bytes kept from the end of one chunk so a pattern across two is still seen whole.
const CARRY: usize = 5 + VENDOR.len();
const CHUNK: usize = 64 * 1024;

/// One range of the member kept: `[start, start + want)`, filled as the stream passes it.
#[derive(Debug)]
struct Span {
    start: u64,
    want: u64,
    data: Vec<u8>,
}

impl Span {
    fn new(start: u64, want: u64) -> Span {
        Span {
            start,
            want,
            data: Vec::new(),
        }
    }

    fn full(&self) -> bool {
        self.data.len() as u64 >= self.want
    }

    /// Take what `window` (which begins at `base`) holds of the part not yet kept.
    fn take(&mut self, window: &[u8], base: u64) {
        let need = self.start + self.data.len() as u64;
        let end = (self.start + self.want).min(base + window.len() as u64);
        if self.full() || need < base || need >= end {
            return;
        }
        let from = (need - base) as usize;
        let to = (end - base) as usize;
        self.data.extend_from_slice(&window[from..to]);
    }
}

/// The spans kept of one member, readable as the file would be.
#[derive(Debug)]
pub(super) struct Kept {
    head: Vec<u8>,
    spans: Vec<Span>,
}

impl ReadAt for Kept {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset + buf.len() as u64;
        let mut from = |start: u64, data: &[u8]| -> Option<()> {
            let at = usize::try_from(offset.checked_sub(start)?).ok()?;
            buf.copy_from_slice(data.get(at..at + buf.len())?);
            Some(())
        };
        if end <= self.head.len() as u64 && from(0, &self.head).is_some() {
            return Ok(());
        }
        for s in &self.spans {
            if offset >= s.start && end <= s.start + s.data.len() as u64 {
                if let Some(()) = from(s.start, &s.data) {
                    return Ok(());
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "not kept from the stream",
        ))
    }
}

/// Where the section header table is, from a 32-bit ELF header, and how many entries it
/// has; none when the ELF reader would not read it.
fn table_span(head: &[u8], size: u64) -> Option<(Span, usize)> {
    let big = head.get(5) == Some(&2);
    let u16_at = |at: usize| {
        let b: [u8; 2] = head.get(at..at + 2)?.try_into().ok()?;
        Some(if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let b: [u8; 4] = head.get(0x20..0x24)?.try_into().ok()?;
    let shoff = u64::from(if big {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    });
    let (entsize, count) = (u16_at(0x2e)?, u16_at(0x30)?);
    let len = u64::from(entsize) * u64::from(count);
    (shoff != 0 && len != 0 && len <= TABLE_MAX && shoff + len <= size)
        .then(|| (Span::new(shoff, len), usize::from(count)))
}

/// The attributes section the table names: its start and as much of it as the reader takes.
fn attributes_span(head: &[u8], table: &[u8], count: usize, size: u64) -> Option<Span> {
    let endian = if head.get(5) == Some(&2) {
        scroll::Endian::Big
    } else {
        scroll::Endian::Little
    };
    // Container::Little is goblin's name for 32-bit.
    let ctx = Ctx::new(Container::Little, endian);
    let shdrs = SectionHeader::parse_from(table, 0, count, ctx).ok()?;
    let sh = shdrs.iter().find(|s| s.sh_type == SHT_ARM_ATTRIBUTES)?;
    let want = sh.sh_size.min(SECTION_MAX);
    (sh.sh_offset.checked_add(want)? <= size).then(|| Span::new(sh.sh_offset, want))
}

/// Read the rest of a 32-bit ARM member (`head` already read, `size` bytes in all) from
/// `rest`, keeping what naming it needs; also how many bytes of `rest` there were.
pub(super) fn read(head: &[u8], rest: &mut dyn Read, size: u64) -> io::Result<(Kept, u64)> {
    let (mut table, count) = match table_span(head, size) {
        Some((t, count)) => (Some(t), count),
        None => (None, 0),
    };
    let mut spans: Vec<Span> = Vec::new();
    let mut candidates = 0;
    let mut attributes_known = false;
    // The window: the last CARRY bytes already seen, then the new chunk.
    let mut window: Vec<u8> = Vec::with_capacity(CARRY + CHUNK);
    window.extend_from_slice(head);
    let mut base = 0u64;
    let mut fresh_from = 0usize;
    let mut read = 0u64;
    loop {
        for hit in memchr::memmem::find_iter(&window, VENDOR) {
            // Patterns wholly inside the carried bytes were seen with the previous chunk.
            if hit < 5 || hit + VENDOR.len() <= fresh_from || window[hit - 5] != b'A' {
                continue;
            }
            let start = base + (hit - 5) as u64;
            if candidates < CANDIDATES_MAX && !spans.iter().any(|s| s.start == start) {
                candidates += 1;
                spans.push(Span::new(
                    start,
                    SECTION_MAX.min(size.saturating_sub(start)),
                ));
            }
        }
        for s in spans.iter_mut().chain(table.iter_mut()) {
            s.take(&window, base);
        }
        if !attributes_known && table.as_ref().is_some_and(Span::full) {
            attributes_known = true;
            let t = table
                .as_ref()
                .map(|t| t.data.as_slice())
                .unwrap_or_default();
            if let Some(mut s) = attributes_span(head, t, count, size) {
                if s.start >= base && !spans.iter().any(|k| k.start == s.start) {
                    s.take(&window, base);
                    spans.push(s);
                }
            }
        }
        // The next chunk, after the last CARRY bytes of this window.
        let keep = window.len().min(CARRY);
        let drop = window.len() - keep;
        window.drain(..drop);
        base += drop as u64;
        fresh_from = keep;
        window.resize(keep + CHUNK, 0);
        let n = loop {
            match rest.read(&mut window[keep..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        window.truncate(keep + n);
        if n == 0 {
            break;
        }
        read += n as u64;
    }
    spans.extend(table);
    Ok((
        Kept {
            head: head.to_vec(),
            spans,
        },
        read,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchTable;
    use crate::scan::{Sniff, identify};

    /// An attributes section naming Tag_CPU_arch `cpu_arch` (10: v7), as compilers write it.
    fn attributes(cpu_arch: u8) -> Vec<u8> {
        crate::elf::attributes_section(VENDOR, &[6u8, cpu_arch, 28, 1])
    }

    /// A soft-float 32-bit ARM program (so without its attributes it reads as v5) whose
    /// attributes section (v7) is at `attrs_at` and its section header table at `table_at`,
    /// `len` bytes in all; `decoys` are places that look like an attributes section.
    fn program(attrs_at: usize, table_at: usize, len: usize, decoys: &[usize]) -> Vec<u8> {
        let mut f = vec![0x55u8; len];
        f[..52].fill(0);
        f[..4].copy_from_slice(b"\x7fELF");
        f[4..7].copy_from_slice(&[1, 1, 1]);
        f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        f[18..20].copy_from_slice(&40u16.to_le_bytes()); // EM_ARM
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[0x20..0x24].copy_from_slice(&(table_at as u32).to_le_bytes());
        f[0x24..0x28].copy_from_slice(&0x0500_0200u32.to_le_bytes()); // EABI5, soft float
        f[0x28..0x2a].copy_from_slice(&52u16.to_le_bytes());
        f[0x2e..0x30].copy_from_slice(&40u16.to_le_bytes());
        f[0x30..0x32].copy_from_slice(&2u16.to_le_bytes());
        for &d in decoys {
            let mut decoy = attributes(4);
            decoy[0] = b'A';
            f[d..d + decoy.len()].copy_from_slice(&decoy);
        }
        let a = attributes(10);
        f[attrs_at..attrs_at + a.len()].copy_from_slice(&a);
        // Section 0 is the null section; section 1 the attributes.
        let sh = table_at + 40;
        f[table_at..sh].fill(0);
        f[sh..sh + 40].fill(0);
        f[sh + 4..sh + 8].copy_from_slice(&SHT_ARM_ATTRIBUTES.to_le_bytes());
        f[sh + 16..sh + 20].copy_from_slice(&(attrs_at as u32).to_le_bytes());
        f[sh + 20..sh + 24].copy_from_slice(&(a.len() as u32).to_le_bytes());
        f
    }

    fn variant(s: &Sniff) -> Option<String> {
        match s {
            Sniff::Elf(id) => id.variant.clone(),
            other => panic!("not an ELF: {other:?}"),
        }
    }

    /// Read from a stream in small pieces, the program is named as from the whole file:
    /// whether the section lies before the table (as linkers put it) or after, near a chunk
    /// boundary or across one, behind places that only look like it.
    #[test]
    fn a_streamed_program_is_named_as_the_whole_file_names_it() {
        let t = ArchTable::embedded();
        let big = 3 * CHUNK + 1000;
        let cases = [
            (200, 1000, 2000, vec![]),
            (100, big - 80, big, vec![]),
            (CHUNK - 7, big - 80, big, vec![]),
            (2 * CHUNK + 3, big - 80, big, vec![500, CHUNK - 3]),
            (CHUNK + 11, 300, big, vec![]),
            (big - 100, 300, big, vec![]),
        ];
        for (attrs_at, table_at, len, decoys) in cases {
            let f = program(attrs_at, table_at, len, &decoys);
            let whole = identify(&t, &f[..64], &f.as_slice(), len as u64);
            assert_eq!(
                variant(&whole).as_deref(),
                Some("v7"),
                "{attrs_at} {table_at}"
            );
            // A reader that gives at most 1000 bytes a call.
            let mut rest = &f[64..];
            let mut small = SmallReads(&mut rest);
            let (kept, read) = read(&f[..64], &mut small, len as u64).expect("read");
            assert_eq!(read, (len - 64) as u64);
            let streamed = identify(&t, &f[..64], &kept, len as u64);
            assert_eq!(variant(&streamed), variant(&whole), "{attrs_at} {table_at}");
        }
    }

    /// Without a section where the table says, the float ABI names it, as for a damaged one.
    #[test]
    fn a_section_not_kept_reads_as_missing() {
        let t = ArchTable::embedded();
        let len = 4 * CHUNK;
        let mut f = program(CHUNK, len - 80, len, &[]);
        f[CHUNK + 5] = b'X'; // no longer "aeabi": not kept
        let (kept, _) = read(&f[..64], &mut &f[64..], len as u64).expect("read");
        let s = identify(&t, &f[..64], &kept, len as u64);
        assert_eq!(variant(&s).as_deref(), Some("v5"));
    }

    struct SmallReads<'a, R>(&'a mut R);

    impl<R: Read> Read for SmallReads<'_, R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(1000);
            self.0.read(&mut buf[..n])
        }
    }
}
