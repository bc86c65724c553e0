//! The bytes of a tar stream as `archive` walks it: decompressed bytes read into one buffer
//! (headers and first bytes are read there, the rest of a member is passed over in place),
//! or a plain tar file, or a member of one, read by position (what is passed over is never
//! read). [`Data`] is one member's share.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::elf::ReadAt;
use crate::scan::ScanError;

/// The buffer a decompressed stream is read into: large enough that a decompressor call
/// fills it with many members at once.
const STREAM_BUFFER: usize = 256 * 1024;
/// The buffer a plain tar file is read through: small, since what follows a header is
/// mostly passed over (by seeking, when the member is larger).
const FILE_BUFFER: usize = 32 * 1024;

/// A tar stream to walk: decompressed bytes read through a buffer, or a plain tar file.
pub struct Input<'a> {
    source: Source<'a>,
    /// Bytes consumed so far: the offset of the next byte in the tar stream.
    pos: u64,
}

impl std::fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.source {
            Source::Stream(_) => "stream",
            Source::File { .. } => "file",
        };
        f.debug_struct("Input")
            .field("source", &kind)
            .field("pos", &self.pos)
            .finish()
    }
}

enum Source<'a> {
    Stream(BufReader<Box<dyn Read + 'a>>),
    /// A regular file of `len` bytes (when opened), or a part of one, read by position where
    /// that helps.
    File {
        reader: BufReader<Range>,
        len: u64,
    },
}

/// A part of a file, `len` bytes from `base`, read by position (`pread`): several readers
/// share one open file, each with its own place in it.
#[derive(Debug)]
pub(super) struct Range {
    file: Arc<File>,
    base: u64,
    pos: u64,
    len: u64,
}

impl Read for Range {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.base + self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for Range {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let at = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        self.pos = at.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

impl Range {
    pub(super) fn new(file: Arc<File>, base: u64, len: u64) -> Range {
        Range {
            file,
            base,
            pos: 0,
            len,
        }
    }
}

impl<'a> Input<'a> {
    /// A tar stream from any reader (already decompressed).
    pub fn reader(r: impl Read + 'a) -> Input<'a> {
        Input {
            source: Source::Stream(BufReader::with_capacity(STREAM_BUFFER, Box::new(r))),
            pos: 0,
        }
    }

    /// A plain tar in `range` of a file, read by position.
    pub(super) fn file(range: Range) -> Input<'a> {
        let len = range.len;
        Input {
            source: Source::File {
                reader: BufReader::with_capacity(FILE_BUFFER, range),
                len,
            },
            pos: 0,
        }
    }

    pub(super) fn fill(&mut self) -> io::Result<&[u8]> {
        match &mut self.source {
            Source::Stream(r) => r.fill_buf(),
            Source::File { reader, .. } => reader.fill_buf(),
        }
    }

    pub(super) fn consume(&mut self, n: usize) {
        match &mut self.source {
            Source::Stream(r) => r.consume(n),
            Source::File { reader, .. } => reader.consume(n),
        }
        self.pos += n as u64;
    }

    /// Pass over up to `n` bytes without reading them where that can be avoided; how many
    /// there were (fewer only where the stream ends).
    pub(super) fn skip(&mut self, n: u64) -> io::Result<u64> {
        if let Source::File { reader, len } = &mut self.source {
            let there = n.min(len.saturating_sub(self.pos));
            // A file is at most i64::MAX bytes long.
            reader.seek_relative(there as i64)?;
            self.pos += there;
            return Ok(there);
        }
        let mut done = 0;
        while done < n {
            let got = self.fill()?.len();
            if got == 0 {
                break;
            }
            let step = got.min(usize::try_from(n - done).unwrap_or(usize::MAX));
            self.consume(step);
            done += step as u64;
        }
        Ok(done)
    }

    /// Read until `buf` is full or the stream ends; how many bytes came.
    pub(super) fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            let have = match self.fill() {
                Ok(h) => h,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if have.is_empty() {
                break;
            }
            let n = have.len().min(buf.len() - got);
            buf[got..got + n].copy_from_slice(&have[..n]);
            self.consume(n);
            got += n;
        }
        Ok(got)
    }

    /// A plain file that ends before the length it had when opened has changed under us.
    pub(super) fn check_length(&self, what: &str) -> Result<(), ScanError> {
        match &self.source {
            Source::File { len, .. } if self.pos < *len => Err(ScanError::new(format!(
                "{what}: not a readable tar stream: the file became shorter while it was read"
            ))),
            _ => Ok(()),
        }
    }
}

/// The stream's bytes, for a reader that wants them (a stream inside a stream).
impl Read for Input<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let have = self.fill()?;
        let n = have.len().min(buf.len());
        buf[..n].copy_from_slice(&have[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// One member's data, as [`members`] hands it over: read what is needed, and pass over the
/// rest with [`Data::finish`] (or let the walk do it).
pub(in crate::scan) struct Data<'i, 'a> {
    input: &'i mut Input<'a>,
    /// Where the data begins in the stream.
    at: u64,
    size: u64,
    /// Bytes neither read nor passed over yet.
    left: u64,
}

impl Read for Data<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let have = self.input.fill()?;
        let n = have.len().min(want);
        buf[..n].copy_from_slice(&have[..n]);
        self.input.consume(n);
        self.left -= n as u64;
        Ok(n)
    }
}

impl<'i, 'a> Data<'i, 'a> {
    /// The next `size` bytes of `input`, a member's data.
    pub(super) fn new(input: &'i mut Input<'a>, size: u64) -> Data<'i, 'a> {
        Data {
            at: input.pos,
            input,
            size,
            left: size,
        }
    }

    /// Bytes of the member neither read nor passed over yet.
    pub(super) fn left(&self) -> u64 {
        self.left
    }

    /// The file this member is in and where it begins there, when the archive is a plain
    /// file: another reader may read it later by position.
    pub(in crate::scan) fn place(&self) -> Option<(Arc<File>, u64)> {
        match &self.input.source {
            Source::File { reader, .. } => {
                let range = reader.get_ref();
                Some((Arc::clone(&range.file), range.base + self.at))
            }
            Source::Stream(_) => None,
        }
    }

    /// Pass over what is left of the member; how many of its bytes the stream held in all
    /// (fewer than its size only when the stream ends inside it).
    pub(in crate::scan) fn finish(&mut self) -> io::Result<u64> {
        let there = self.input.skip(self.left)?;
        let missing = self.left - there;
        self.left = 0;
        Ok(self.size - missing)
    }

    /// The member as a file read by position, when the archive is a plain file.
    pub(super) fn positional(&self) -> Option<Slice<'_>> {
        match &self.input.source {
            Source::File { reader, .. } => {
                let range = reader.get_ref();
                Some(Slice {
                    file: &range.file,
                    at: range.base + self.at,
                })
            }
            Source::Stream(_) => None,
        }
    }
}

/// A member of a plain tar file, read by position (the ELF reader checks its reads against
/// the member's size).
pub(super) struct Slice<'f> {
    file: &'f File,
    at: u64,
}

impl ReadAt for Slice<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let at = self
            .at
            .checked_add(offset)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        FileExt::read_exact_at(self.file, buf, at)
    }
}
