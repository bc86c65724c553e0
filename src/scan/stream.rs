//! Tar streams that are not files: standard input (`scan -`, `docker save IMAGE | binfmt-setup
//! scan -`) and the Docker daemon's answer. Read once, as a tar file is; what is read is
//! counted for progress.

use std::io::{self, BufReader, Cursor, IsTerminal, Read};
use std::path::Path;

use super::{Expected, Progress, Report, ScanError, archive, tar};
use crate::arch::ArchTable;

/// Scan the tar stream (plain, gzip or zstd) on standard input.
pub fn scan_stdin(
    table: &ArchTable,
    platform: Option<&Expected>,
    progress: &Progress,
) -> Result<Report, ScanError> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        return Err(ScanError::new(
            "- reads a tar stream from standard input, which is a terminal: pipe one in \
             (docker save IMAGE | binfmt-setup scan -)",
        ));
    }
    scan_reader(
        table,
        stdin.lock(),
        Path::new("-"),
        "standard input",
        platform,
        progress,
    )
}

/// Scan a tar stream from `reader`, reported as `root`; `what` names it in errors.
pub(super) fn scan_reader(
    table: &ArchTable,
    reader: impl Read,
    root: &Path,
    what: &str,
    platform: Option<&Expected>,
    progress: &Progress,
) -> Result<Report, ScanError> {
    let mut counted = Counted {
        inner: reader,
        progress,
    };
    // The first header block decides, as for a file: compressed, or a tar (`ustar`).
    let mut head = vec![0u8; 512];
    let got = archive::read_full(&mut counted, &mut head)
        .map_err(|e| ScanError::environment(format!("cannot read {what}: {e}")))?;
    head.truncate(got);
    if got == 0 {
        return Err(ScanError::new(format!(
            "{what} is empty: no tar stream to scan"
        )));
    }
    let compressed = head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    if !compressed && head.get(257..262) != Some(b"ustar") {
        return Err(ScanError::new(format!(
            "{what} is not a tar stream (plain, gzip or zstd); scan - reads docker save output or a tar"
        )));
    }
    let rest = BufReader::with_capacity(256 * 1024, Cursor::new(head).chain(counted));
    let (stream, compression) = archive::decompress(rest, what)?;
    tar::scan_stream(table, stream, compression, root, platform, progress)
}

/// A reader that adds what comes through to the progress counters.
pub(super) struct Counted<'a, R> {
    pub inner: R,
    pub progress: &'a Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress
            .bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}
