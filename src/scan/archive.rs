//! Reading tar streams, for the tar file scanned (`tar`) and for an image's layers (`oci`):
//! a layer, a root filesystem export, or the outer archive of `docker save`. Members are
//! read in order from the stream and nothing is ever extracted, so `../` and absolute member
//! names are only names. Plain, gzip and zstd streams are recognised by their first bytes;
//! every stream is capped, so a decompression bomb ends in an error.

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use ::tar::{Archive, EntryType};

use super::layers::LayerEntry;
use super::{HEAD, Progress, ScanError, Sniff, identify, image_path};
use crate::arch::ArchTable;
use crate::fileio::{self, Follow};

/// A stream may expand to at most this many bytes.
pub const MAX_EXPANDED: u64 = 64 << 30;
/// GNU long-name and pax headers longer than this are not names but an attack.
const MAX_NAME_HEADER: u64 = 1 << 20;
/// 32-bit ARM members up to this size are held in memory to read their attributes section
/// (it lies near the end); a bigger one is named from the float ABI in its header.
const MAX_ARM_MEMBER: u64 = 32 << 20;
const EM_ARM: u16 = 40;

/// Wrap `r` in the decompressor its first bytes call for. `what` names it in errors.
pub fn decompress<'a, R: BufRead + 'a>(
    mut r: R,
    what: &str,
) -> Result<(Box<dyn Read + 'a>, Option<&'static str>), ScanError> {
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
    Ok((
        Box::new(Capped {
            inner: reader,
            left: MAX_EXPANDED,
            what: what.to_string(),
        }),
        compression,
    ))
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
pub(super) struct Member<'a> {
    /// The path inside the image (`/usr/bin/x`), from a bounded long name where there is one.
    pub path: String,
    pub kind: EntryType,
    /// The size its header gives.
    pub size: u64,
    /// Its data; what is left unread is read to the end after the visit.
    pub data: &'a mut dyn Read,
}

/// Walk a tar stream, handing each member (long-name and pax headers resolved) to `visit`.
/// `what` names the stream in errors.
pub(super) fn members<R: Read>(
    reader: R,
    what: &str,
    mut visit: impl FnMut(Member<'_>) -> Result<(), ScanError>,
) -> Result<(), ScanError> {
    let broken = |e: io::Error| ScanError::new(format!("{what}: not a readable tar stream: {e}"));
    let mut archive = Archive::new(reader);
    // Raw: long names and pax headers are read here, bounded, not by the tar crate unbounded.
    let entries = archive.entries().map_err(broken)?.raw(true);
    let mut long_name: Option<Vec<u8>> = None;
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            // Every member's data is read to its end below, so what the tar crate still
            // skips is the padding to a 512-byte block. Some writers (umoci 0.4) end a
            // layer right after the last member's data, without that padding and the two
            // zero blocks; Go's archive/tar, and so Docker, accept it, and so do we.
            Err(e) if e.to_string().contains("EOF during skip") => break,
            Err(e) => return Err(broken(e)),
        };
        let kind = entry.header().entry_type();
        match kind {
            EntryType::GNULongName => {
                let mut name = read_bounded(&mut entry, MAX_NAME_HEADER, what)?;
                while name.last() == Some(&0) {
                    name.pop();
                }
                long_name = Some(name);
                continue;
            }
            EntryType::XHeader => {
                let data = read_bounded(&mut entry, MAX_NAME_HEADER, what)?;
                if let Some(p) = ::tar::PaxExtensions::new(&data)
                    .filter_map(Result::ok)
                    .find(|x| x.key_bytes() == b"path")
                {
                    long_name = Some(p.value_bytes().to_vec());
                }
                continue;
            }
            EntryType::XGlobalHeader | EntryType::GNULongLink => {
                io::copy(&mut entry, &mut io::sink()).map_err(broken)?;
                continue;
            }
            _ => {}
        }
        let raw = long_name
            .take()
            .unwrap_or_else(|| entry.path_bytes().into_owned());
        visit(Member {
            path: image_path(&raw),
            kind,
            size: entry.header().entry_size().unwrap_or(0),
            data: &mut entry,
        })?;
        io::copy(&mut entry, &mut io::sink()).map_err(broken)?;
    }
    Ok(())
}

/// A layer's entries, its stream decompressed as its first bytes say. `what` names it in
/// errors.
pub(super) fn layer_entries(
    table: &ArchTable,
    reader: impl BufRead,
    what: &str,
    progress: &Progress,
) -> Result<Vec<LayerEntry>, ScanError> {
    let (stream, _) = decompress(reader, what)?;
    let mut entries = Vec::new();
    read_entries(table, stream, what, progress, |e| entries.push(e))?;
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
pub fn read_entries<R: Read>(
    table: &ArchTable,
    reader: R,
    what: &str,
    progress: &Progress,
    mut sink: impl FnMut(LayerEntry),
) -> Result<(), ScanError> {
    members(reader, what, |m| {
        if is_regular(m.kind) {
            match whiteout(&m.path) {
                Some(w) => sink(w),
                None => {
                    let sniff = file(table, m.data, &m.path, m.size, what, progress)?;
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

/// Identify one regular member and read the rest of it, to know it is whole.
fn file(
    table: &ArchTable,
    data: &mut dyn Read,
    path: &str,
    size: u64,
    what: &str,
    progress: &Progress,
) -> Result<Sniff, ScanError> {
    let cannot = |e: io::Error| ScanError::new(format!("{what}: cannot read member {path}: {e}"));
    let mut head = [0u8; HEAD];
    let got = read_full(data, &mut head).map_err(cannot)?;
    let (sniff, more) = sniff(table, &head[..got], data, size).map_err(cannot)?;
    // Read the rest here rather than let the tar crate skip it, to know that the
    // member is whole (see `members`).
    let rest = io::copy(data, &mut io::sink()).map_err(cannot)?;
    check_whole(got as u64 + more + rest, size, path, what)?;
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

/// Identify a member of `size` bytes from its first bytes, `head`, reading on from `rest`
/// only for a 32-bit ARM program; also how many bytes of `rest` that took.
pub(super) fn sniff<R: Read + ?Sized>(
    table: &ArchTable,
    head: &[u8],
    rest: &mut R,
    size: u64,
) -> io::Result<(Sniff, u64)> {
    if !head.starts_with(b"\x7fELF") {
        return Ok((Sniff::NotElf, 0));
    }
    let machine = match head.get(5) {
        Some(2) => head.get(18..20).map(|b| u16::from_be_bytes([b[0], b[1]])),
        _ => head.get(18..20).map(|b| u16::from_le_bytes([b[0], b[1]])),
    };
    if head.get(4) == Some(&1) && machine == Some(EM_ARM) && size <= MAX_ARM_MEMBER {
        let mut all = head.to_vec();
        rest.take(size.saturating_sub(head.len() as u64))
            .read_to_end(&mut all)?;
        let more = (all.len() - head.len()) as u64;
        return Ok((identify(table, head, &all.as_slice(), size), more));
    }
    Ok((identify(table, head, &head, size), 0))
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
/// tar writer of the last thirty years puts `ustar` in the first header. Only a regular
/// file is opened (a FIFO or a device is refused without blocking); `follow` says whether a
/// symlink may lead there (the path the user gave) or not (a blob inside a layout).
pub fn open(
    path: &Path,
    follow: Follow,
) -> Result<(Box<dyn Read>, Option<&'static str>), ScanError> {
    let (file, _) = fileio::open_regular(path, follow)
        .map_err(|e| ScanError::new(format!("cannot scan {}: {e}", path.display())))?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let head = reader
        .fill_buf()
        .map_err(|e| ScanError::new(format!("cannot read {}: {e}", path.display())))?;
    let compressed = head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    if !compressed && !head.is_empty() && head.get(257..262) != Some(b"ustar") {
        return Err(ScanError::new(format!(
            "{} is neither a directory, a tar file (plain, gzip or zstd) nor an OCI image layout",
            path.display()
        )));
    }
    decompress(reader, &path.display().to_string())
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
        let (mut r, c) = decompress(&stream[..], "x").expect("zstd");
        assert_eq!(c, Some("zstd"));
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("decode");
        assert_eq!(out.len(), first.len() + second.len());
        assert!(out.starts_with(&first) && out.ends_with(&second));
        let cut = &stream[..stream.len() - 3];
        let (mut r, _) = decompress(cut, "x").expect("zstd");
        assert!(
            r.read_to_end(&mut Vec::new()).is_err(),
            "a cut stream is an error"
        );
    }

    #[test]
    fn refuses_xz_and_reads_plain() {
        let xz = [0xfdu8, b'7', b'z', b'X', b'Z', 0, 0, 0];
        assert!(decompress(&xz[..], "x").is_err());
        let (_, c) = decompress(&b"plain"[..], "x").expect("plain");
        assert_eq!(c, None);
    }
}
