//! Reading tar streams, for the tar file scanned (`tar`) and for an image's layers (`oci`):
//! a layer, a root filesystem export, or the outer archive of `docker save`. Members are
//! read in order from the stream and nothing is ever extracted, so `../` and absolute member
//! names are only names. Plain, gzip and zstd streams are recognised by their first bytes;
//! every stream is capped, so a decompression bomb ends in an error.
//!
//! Only what a verdict needs is looked at: each header, and a member's first bytes (and, for
//! a 32-bit ARM program, its attributes section). A decompressed stream is read into one
//! buffer that headers are parsed in and the rest of each member is passed over in, with no
//! further copy, so a scan costs little more than the decompression; a plain tar file is
//! read by position, and the data of members that cannot be programs is never read at all.

mod input;

use std::io::{self, BufRead, BufReader, Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use ::tar::{EntryType, Header};

use super::layers::{Entries, LayerEntry};
use super::needing;
use super::{HEAD, Progress, ScanError, Sniff, arm, identify, image_path};
use crate::arch::ArchTable;
use crate::fileio::{self, Follow};
pub(super) use input::Data;
pub use input::Input;
use input::Range;

/// A stream may expand to at most this many bytes.
pub const MAX_EXPANDED: u64 = 64 << 30;
/// GNU long-name and pax headers longer than this are not names but an attack.
const MAX_NAME_HEADER: u64 = 1 << 20;
const EM_ARM: u16 = 40;
const BLOCK: u64 = 512;
/// Compressed bytes read at a time.
const COMPRESSED_BUFFER: usize = 256 * 1024;
/// Wrap `r` in the decompressor its first bytes call for. `what` names it in errors.
pub fn decompress<'a, R: BufRead + 'a>(
    mut r: R,
    what: &str,
) -> Result<(Input<'a>, Option<&'static str>), ScanError> {
    let head = r
        .fill_buf()
        .map_err(|e| ScanError::new(format!("cannot read {what}: {e}")))?;
    let (reader, compression): (Box<dyn Read + 'a>, _) = if head.starts_with(&[0x1f, 0x8b]) {
        (
            Box::new(flate2::bufread::MultiGzDecoder::new(r)),
            Some("gzip"),
        )
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        (Box::new(zstd_reader(r)?), Some("zstd"))
    } else if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(ScanError::new(format!(
            "{what} is bzip2- or xz-compressed; scan reads plain, gzip and zstd tar streams (decompress it first)"
        )));
    } else {
        (Box::new(r), None)
    };
    let capped = Capped {
        inner: reader,
        left: MAX_EXPANDED,
        what: what.to_string(),
    };
    Ok((Input::reader(capped), compression))
}

/// libzstd's streaming decoder: every frame in turn, skippable frames passed over, as
/// zstd(1) does. A frame may ask for a window of up to 2^27 bytes, zstd(1)'s own default
/// limit (frames of levels up to 19 use at most 8 MiB).
fn zstd_reader<'a, R: BufRead + 'a>(r: R) -> Result<impl Read + 'a, ScanError> {
    let mut d = zstd::stream::read::Decoder::with_buffer(r)
        .map_err(|e| ScanError::new(format!("zstd: {e}")))?;
    d.window_log_max(27)
        .map_err(|e| ScanError::new(format!("zstd: {e}")))?;
    Ok(d)
}

/// A reader that fails once more than its cap has come through.
struct Capped<R> {
    inner: R,
    left: u64,
    what: String,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            io::Error::other(format!(
                "{} expands past {} GiB; refusing it (a decompression bomb?)",
                self.what,
                MAX_EXPANDED >> 30
            ))
        })?;
        Ok(n)
    }
}

/// Read until `buf` is full or the stream ends; how many bytes came.
pub(super) fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Read a bounded amount of a member (a name header).
fn read_bounded(r: &mut impl Read, limit: u64, what: &str) -> Result<Vec<u8>, ScanError> {
    let mut data = Vec::new();
    r.take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|e| ScanError::new(format!("{what}: {e}")))?;
    if data.len() as u64 > limit {
        return Err(ScanError::new(format!(
            "{what}: a name header longer than {limit} bytes"
        )));
    }
    Ok(data)
}

/// One member of a tar stream, as [`members`] hands it over.
pub(super) struct Member<'d, 'i, 'a> {
    /// The path inside the image (`/usr/bin/x`), from a bounded long name where there is one.
    pub path: String,
    pub kind: EntryType,
    /// The size its header gives.
    pub size: u64,
    /// Its mode bits (permissions, set-id), 0 where the header's field is unreadable.
    pub mode: u32,
    pub data: &'d mut Data<'i, 'a>,
}

/// Walk a tar stream, handing each member (long-name and pax headers resolved) to `visit`.
/// `what` names the stream in errors. Headers are read as the tar crate reads them (its
/// `Header` parses each); what a visit leaves of a member's data is passed over unread.
pub(super) fn members(
    mut input: Input<'_>,
    what: &str,
    mut visit: impl FnMut(Member<'_, '_, '_>) -> Result<(), ScanError>,
) -> Result<(), ScanError> {
    let broken = |e: io::Error| ScanError::new(format!("{what}: not a readable tar stream: {e}"));
    let mut long_name: Option<Vec<u8>> = None;
    let mut block = [0u8; BLOCK as usize];
    loop {
        let got = input.read_into(&mut block).map_err(broken)?;
        if got == 0 {
            input.check_length(what)?;
            return Ok(());
        }
        if got < block.len() {
            return Err(broken(io::Error::other("failed to read entire block")));
        }
        // A zero block ends the archive.
        if block.iter().all(|b| *b == 0) {
            return Ok(());
        }
        let header = Header::from_byte_slice(&block);
        let sum = block[..148]
            .iter()
            .chain(&block[156..])
            .fold(0u32, |a, b| a + u32::from(*b))
            + 8 * 32;
        if header.cksum().map_err(broken)? != sum {
            return Err(broken(io::Error::other("archive header checksum mismatch")));
        }
        let kind = header.entry_type();
        let size = header.entry_size().map_err(broken)?;
        let padded = size
            .checked_add(BLOCK - 1)
            .ok_or_else(|| broken(io::Error::other("size overflow")))?
            & !(BLOCK - 1);
        let mut data = Data::new(&mut input, size);
        match kind {
            EntryType::GNULongName => {
                let mut name = read_bounded(&mut data, MAX_NAME_HEADER, what)?;
                while name.last() == Some(&0) {
                    name.pop();
                }
                long_name = Some(name);
            }
            EntryType::XHeader => {
                let ext = read_bounded(&mut data, MAX_NAME_HEADER, what)?;
                if let Some(p) = ::tar::PaxExtensions::new(&ext)
                    .filter_map(Result::ok)
                    .find(|x| x.key_bytes() == b"path")
                {
                    long_name = Some(p.value_bytes().to_vec());
                }
            }
            EntryType::XGlobalHeader | EntryType::GNULongLink => {}
            _ => visit(Member {
                path: image_path(
                    &long_name
                        .take()
                        .unwrap_or_else(|| header.path_bytes().into_owned()),
                ),
                kind,
                size,
                mode: header.mode().unwrap_or(0),
                data: &mut data,
            })?,
        }
        // Pass over the rest and the padding to the next block. Some writers (umoci 0.4) end
        // a layer right after the last member's data, without that padding and the two zero
        // blocks; Go's archive/tar, and so Docker, accept it, and so do we. A member whose
        // data is cut short is the visit's to refuse (`Data::finish`).
        let rest = data.left() + (padded - size);
        if input.skip(rest).map_err(broken)? < rest {
            input.check_length(what)?;
            return Ok(());
        }
    }
}

/// A layer's entries, its stream decompressed as its first bytes say. `what` names it in
/// errors.
pub(super) fn layer_entries(
    table: &ArchTable,
    reader: impl BufRead,
    what: &str,
    progress: &Progress,
) -> Result<Entries, ScanError> {
    let (stream, _) = decompress(reader, what)?;
    let mut entries = Entries::default();
    read_entries(table, stream, what, progress, |e| entries.push(e))?;
    entries.shrink_to_fit();
    Ok(entries)
}

/// The entries of a layer stored whole as `size` bytes at `at` in a plain archive file, read
/// by position on its own (so layers are read side by side): decompressed as it is read when
/// its first bytes say so, else only what a verdict needs is read. `what` names it in errors.
pub(super) fn stored_layer_entries(
    table: &ArchTable,
    file: Arc<std::fs::File>,
    at: u64,
    size: u64,
    what: &str,
    progress: &Progress,
) -> Result<Entries, ScanError> {
    let mut head = [0u8; 6];
    let got = file
        .read_at(&mut head[..size.min(6) as usize], at)
        .map_err(|e| ScanError::new(format!("cannot read {what}: {e}")))?;
    let head = &head[..got];
    let compressed = [
        &[0x1f, 0x8b][..],
        &[0x28, 0xb5, 0x2f, 0xfd],
        b"BZh",
        b"\xfd7zXZ\0",
    ]
    .iter()
    .any(|magic| head.starts_with(magic));
    let range = Range::new(file, at, size);
    let input = if compressed {
        let reader = BufReader::with_capacity(COMPRESSED_BUFFER, range);
        decompress(reader, what)?.0
    } else {
        Input::file(range)
    };
    let mut entries = Entries::default();
    read_entries(table, input, what, progress, |e| entries.push(e))?;
    entries.shrink_to_fit();
    Ok(entries)
}

/// Whether a member of this type holds a file's data.
pub(super) fn is_regular(kind: EntryType) -> bool {
    matches!(
        kind,
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse
    )
}

/// Read one tar stream, handing each member to `sink` as a layer entry. Regular files are
/// identified from their first bytes. `what` names the stream in errors.
pub fn read_entries(
    table: &ArchTable,
    input: Input<'_>,
    what: &str,
    progress: &Progress,
    mut sink: impl FnMut(LayerEntry),
) -> Result<(), ScanError> {
    members(input, what, |m| {
        if is_regular(m.kind) {
            match whiteout(&m.path) {
                Some(w) => sink(w),
                None => {
                    let sniff = file(table, m.data, &m.path, m.size, what, progress)?;
                    let sniff = needing::with_mode(sniff, m.mode);
                    sink(LayerEntry::File(m.path, sniff));
                }
            }
        } else if m.kind == EntryType::Directory {
            sink(LayerEntry::Dir(m.path));
        } else {
            sink(LayerEntry::Other(m.path));
        }
        Ok(())
    })
}

/// What a regular member named `.wh.NAME` or `.wh..wh..opq` stands for.
pub(super) fn whiteout(path: &str) -> Option<LayerEntry> {
    let (dir, base) = split(path);
    if base == ".wh..wh..opq" {
        return Some(LayerEntry::Opaque(dir.to_string()));
    }
    base.strip_prefix(".wh.")
        .map(|name| LayerEntry::Whiteout(join(dir, name)))
}

/// Identify one regular member and pass over the rest of it, knowing it is whole.
fn file(
    table: &ArchTable,
    data: &mut Data<'_, '_>,
    path: &str,
    size: u64,
    what: &str,
    progress: &Progress,
) -> Result<Sniff, ScanError> {
    let cannot = |e: io::Error| ScanError::new(format!("{what}: cannot read member {path}: {e}"));
    let mut head = [0u8; HEAD];
    let got = read_full(data, &mut head).map_err(cannot)?;
    let sniff = sniff(table, &head[..got], data, size).map_err(cannot)?;
    check_whole(data.finish().map_err(cannot)?, size, path, what)?;
    progress.file(!matches!(sniff, Sniff::NotElf));
    Ok(sniff)
}

/// A member whose stream ended before its header's size is an error, not a short file.
pub(super) fn check_whole(read: u64, size: u64, path: &str, what: &str) -> Result<(), ScanError> {
    if read < size {
        return Err(ScanError::new(format!(
            "{what}: the stream ends inside member {path} ({read} of {size} bytes)"
        )));
    }
    Ok(())
}

/// Whether naming a member with these first bytes takes more of it: a 32-bit ARM program,
/// whose variant is in its attributes section.
pub(super) fn reads_on(head: &[u8]) -> bool {
    let machine = match head.get(5) {
        Some(2) => head.get(18..20).map(|b| u16::from_be_bytes([b[0], b[1]])),
        _ => head.get(18..20).map(|b| u16::from_le_bytes([b[0], b[1]])),
    };
    head.starts_with(b"\x7fELF") && head.get(4) == Some(&1) && machine == Some(EM_ARM)
}

/// Identify a member of `size` bytes from its first bytes, `head`, reading on from `data`
/// where naming it or its needs take more: by position in a plain file; else, for a program
/// whose family has instruction-set levels, the whole member when it is small enough
/// (`needing`); else, for a 32-bit ARM program, only the spans that name it (`arm`).
pub(super) fn sniff(
    table: &ArchTable,
    head: &[u8],
    data: &mut Data<'_, '_>,
    size: u64,
) -> io::Result<Sniff> {
    if !head.starts_with(b"\x7fELF") {
        return Ok(Sniff::NotElf);
    }
    if let Some(slice) = data.positional() {
        // Only a 32-bit ARM program is named from more than its first bytes.
        let named = if reads_on(head) {
            identify(table, head, &slice, size)
        } else {
            identify(table, head, &head, size)
        };
        return Ok(needing::with_needs(named, &slice, size));
    }
    let first = identify(table, head, &head, size);
    if needing::wanted(&first) {
        if let Some(whole) = needing::read_whole(head, data, size)? {
            let src = whole.as_slice();
            return Ok(needing::with_needs(
                identify(table, head, &src, size),
                &src,
                size,
            ));
        }
    }
    if !reads_on(head) {
        return Ok(first);
    }
    let (kept, _) = arm::read(head, data, size)?;
    Ok(needing::with_needs(
        identify(table, head, &kept, size),
        &kept,
        size,
    ))
}

/// `/a/b` → (`/a`, `b`); `/b` → (`/`, `b`).
fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Open a file and its decompressor. An uncompressed file must look like a tar: every
/// tar writer of the last thirty years puts `ustar` in the first header; it is then read by
/// position. Only a regular file is opened (a FIFO or a device is refused without
/// blocking); `follow` says whether a symlink may lead there (the path the user gave) or not
/// (a blob inside a layout).
pub fn open(
    path: &Path,
    follow: Follow,
) -> Result<(Input<'static>, Option<&'static str>), ScanError> {
    let (file, meta) = fileio::open_regular(path, follow)
        .map_err(|e| ScanError::new(format!("cannot scan {}: {e}", path.display())))?;
    let mut head = [0u8; 262];
    let got = file
        .read_at(&mut head, 0)
        .and_then(|n| {
            // A short first read of a regular file: read on until the 262 bytes or the end.
            let mut got = n;
            while got < head.len() {
                match file.read_at(&mut head[got..], got as u64)? {
                    0 => break,
                    n => got += n,
                }
            }
            Ok(got)
        })
        .map_err(|e| ScanError::new(format!("cannot read {}: {e}", path.display())))?;
    let head = &head[..got];
    let compressed = head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    if !compressed && !head.is_empty() && head.get(257..262) != Some(b"ustar") {
        return Err(ScanError::new(format!(
            "{} is neither a directory, a tar file (plain, gzip or zstd) nor an OCI image layout",
            path.display()
        )));
    }
    if compressed {
        let mut file = file;
        file.rewind()
            .map_err(|e| ScanError::new(format!("cannot read {}: {e}", path.display())))?;
        let reader = BufReader::with_capacity(COMPRESSED_BUFFER, file);
        return decompress(reader, &path.display().to_string());
    }
    let range = Range::new(Arc::new(file), 0, meta.len());
    Ok((Input::file(range), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_joins_member_paths() {
        assert_eq!(split("/a/b/.wh.c"), ("/a/b", ".wh.c"));
        assert_eq!(split("/.wh.c"), ("/", ".wh.c"));
        assert_eq!(join("/", "c"), "/c");
        assert_eq!(join("/a", "c"), "/a/c");
    }

    #[test]
    fn capped_stream_stops_a_bomb() {
        let mut c = Capped {
            inner: io::repeat(0).take(100),
            left: 10,
            what: "x".into(),
        };
        let mut sink = Vec::new();
        let e = c.read_to_end(&mut sink).unwrap_err();
        assert!(e.to_string().contains("decompression bomb"), "{e}");
    }

    fn all_of(input: Input<'_>) -> io::Result<Vec<u8>> {
        let mut input = input;
        let mut out = Vec::new();
        loop {
            let have = input.fill()?;
            if have.is_empty() {
                return Ok(out);
            }
            let n = have.len();
            out.extend_from_slice(have);
            input.consume(n);
        }
    }

    #[test]
    fn zstd_frames_are_read_one_after_another_and_skippable_ones_skipped() {
        let first: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let second = b"the second frame".repeat(1000);
        let mut stream = zstd::encode_all(&first[..], 1).expect("encode");
        // A skippable frame (as zstd:chunked writes its table of contents).
        stream.extend_from_slice(&0x184d_2a5e_u32.to_le_bytes());
        stream.extend_from_slice(&5u32.to_le_bytes());
        stream.extend_from_slice(b"toc!!");
        stream.extend_from_slice(&zstd::encode_all(&second[..], 1).expect("encode"));
        let (r, c) = decompress(&stream[..], "x").expect("zstd");
        assert_eq!(c, Some("zstd"));
        let out = all_of(r).expect("decode");
        assert_eq!(out.len(), first.len() + second.len());
        assert!(out.starts_with(&first) && out.ends_with(&second));
        let cut = &stream[..stream.len() - 3];
        let (r, _) = decompress(cut, "x").expect("zstd");
        assert!(all_of(r).is_err(), "a cut stream is an error");
    }

    #[test]
    fn refuses_xz_and_reads_plain() {
        let xz = [0xfdu8, b'7', b'z', b'X', b'Z', 0, 0, 0];
        assert!(decompress(&xz[..], "x").is_err());
        let (_, c) = decompress(&b"plain"[..], "x").expect("plain");
        assert_eq!(c, None);
    }
}
