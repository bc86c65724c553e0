//! What an image's programs need: read while a layer streams past, so the preflight can
//! compare each program with what this host runs (`preflight::check_image`).
//!
//! A program's needs are in places its first bytes do not reach: the x86 ISA note, the
//! RISC-V and ARM attributes sections (near the end), Go's build information (in the data
//! segment). A member read by position (a plain tar, an uncompressed layer) is read where
//! those are. A member of a compressed stream cannot be gone back to, so a program whose
//! family has levels is held whole while it passes, when it is at most [`WHOLE_MAX`] bytes,
//! in one of [`HOLDERS`] buffers kept for reuse, so memory stays bounded whatever the image
//! and the number of layers read side by side. A larger program is named as before, and its
//! needs are what the spans kept for naming it show (ARM attributes), or none.

use std::io::{self, Read};
use std::sync::{Condvar, Mutex};

use super::{ElfId, Sniff};
use crate::elf::{self, ReadAt};
use crate::needs::{self, Needs};

/// The largest member of a compressed stream held whole for its needs.
pub const WHOLE_MAX: u64 = 16 << 20;
/// How many members may be held at once, each in a buffer of its own that is kept for the
/// next (so memory stays at most `HOLDERS * WHOLE_MAX` whatever the image and however many
/// layers are read side by side, and no member pays for fresh pages).
const HOLDERS: usize = 2;

/// The buffers not in use, and how many were ever made; a reader waits for one.
static POOL: Mutex<(Vec<Vec<u8>>, usize)> = Mutex::new((Vec::new(), 0));
static RETURNED: Condvar = Condvar::new();

/// A member held whole, in a buffer of the pool, which it goes back to when dropped.
pub struct Whole {
    bytes: Vec<u8>,
}

impl Whole {
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Whole {
    fn drop(&mut self) {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        pool.0.push(std::mem::take(&mut self.bytes));
        RETURNED.notify_one();
    }
}

/// A buffer from the pool, made while fewer than [`HOLDERS`] exist, else waited for.
fn buffer() -> Vec<u8> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if let Some(b) = pool.0.pop() {
            return b;
        }
        if pool.1 < HOLDERS {
            pool.1 += 1;
            return Vec::new();
        }
        pool = RETURNED.wait(pool).unwrap_or_else(|e| e.into_inner());
    }
}

/// Whether `sniff` may be a program whose needs are worth reading: judged, of a family with
/// levels. (From its first bytes alone a PIE and a library look alike: `needs_of` tells.)
pub fn wanted(sniff: &Sniff) -> bool {
    matches!(sniff, Sniff::Elf(id) if program_of_a_family(id))
}

fn program_of_a_family(id: &ElfId) -> bool {
    id.judged && id.arch.as_deref().and_then(needs::family).is_some()
}

/// The member (`head` already read, `size` bytes in all) held whole, reading the rest from
/// `rest`; `None`, reading nothing, when it is larger than [`WHOLE_MAX`].
pub fn read_whole(head: &[u8], rest: &mut dyn Read, size: u64) -> io::Result<Option<Whole>> {
    if size > WHOLE_MAX {
        return Ok(None);
    }
    // From here the buffer goes back to the pool whatever happens.
    let mut whole = Whole { bytes: buffer() };
    whole.bytes.clear();
    whole.bytes.reserve(size as usize);
    whole.bytes.extend_from_slice(head);
    rest.take(size.saturating_sub(head.len() as u64))
        .read_to_end(&mut whole.bytes)?;
    Ok(Some(whole))
}

/// `sniff` with the needs of the program `src` (`len` bytes) holds, where it is wanted and
/// needs more than its family's baseline.
pub fn with_needs(sniff: Sniff, src: &dyn ReadAt, len: u64) -> Sniff {
    match sniff {
        Sniff::Elf(mut id) if program_of_a_family(&id) => {
            id.needs = id
                .arch
                .as_deref()
                .and_then(|arch| needs_of(src, len, arch))
                .map(Box::new);
            Sniff::Elf(id)
        }
        other => other,
    }
}

/// `sniff` with the mode bits its tar header gave.
pub fn with_mode(sniff: Sniff, mode: u32) -> Sniff {
    match sniff {
        Sniff::Elf(mut id) => {
            id.mode = mode;
            Sniff::Elf(id)
        }
        other => other,
    }
}

/// What the program in `src` needs beyond its family's baseline; `None` for no more, or
/// when it cannot be read.
fn needs_of(src: &dyn ReadAt, len: u64, arch: &str) -> Option<Needs> {
    let mut head = vec![0u8; len.min(crate::format::HEAD_BYTES as u64) as usize];
    src.read_exact_at(&mut head, 0).ok()?;
    let info = elf::read(src, &head, len).ok()?;
    if !info.is_program() {
        return None;
    }
    needs::of_program(src, len, &info, arch).filter(|n| n.mask != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_held_whole_returns_its_buffer_when_dropped() {
        let data = vec![7u8; 1000];
        let whole = read_whole(&data[..10], &mut &data[10..], 1000)
            .expect("read")
            .expect("small enough");
        assert_eq!(whole.as_slice(), data.as_slice());
        drop(whole);
        let pool = POOL.lock().unwrap();
        assert!(!pool.0.is_empty() && pool.1 <= HOLDERS);
        drop(pool);
        assert!(
            read_whole(&[], &mut io::empty(), WHOLE_MAX + 1)
                .expect("read")
                .is_none()
        );
    }
}
