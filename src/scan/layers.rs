//! An image's layers: what each holds, and what is visible once they are stacked.

use std::collections::HashSet;
use std::sync::Arc;

use super::{Expected, Sniff, Tally};

/// One entry of a layer, kept until the layers above it are known.
#[derive(Debug)]
pub enum LayerEntry {
    /// A regular file and what it is.
    File(String, Sniff),
    /// A regular file that could not be read from the stream.
    Unreadable(String, String),
    /// A directory: it hides nothing below it.
    Dir(String),
    /// Anything else that occupies a path (symlink, hard link, device, FIFO).
    Other(String),
    /// `.wh.NAME`: NAME and everything below it are deleted from the layers underneath.
    Whiteout(String),
    /// `.wh..wh..opq` in DIR: DIR's contents in the layers underneath are hidden.
    Opaque(String),
}

/// One layer's entries, with its digest to report.
#[derive(Debug)]
pub struct Layer {
    pub digest: Arc<str>,
    pub entries: Entries,
}

/// A layer's entries, packed: every layer of an image is held until all are read, so an
/// entry costs its path's bytes and 16 more (most files are no ELF and need nothing else),
/// not a string and a record of its own each.
#[derive(Debug, Default)]
pub struct Entries {
    /// Every path, one after another.
    names: String,
    /// Per entry, in order: where its path ends in `names`, and what it is.
    items: Vec<(usize, Tag)>,
    /// What each `File` that is an ELF (or a damaged one) is, and why each `Unreadable` is,
    /// in entry order.
    details: Vec<Detail>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Plain,
    Elf,
    Unreadable,
    Dir,
    Other,
    Whiteout,
    Opaque,
}

#[derive(Debug)]
enum Detail {
    Sniff(Sniff),
    Error(String),
}

/// One entry as [`Entries::iter`] gives it back.
enum Entry<'a> {
    File(&'a str, Option<&'a Sniff>),
    Unreadable(&'a str, &'a str),
    Dir(&'a str),
    Other(&'a str),
    Whiteout(&'a str),
    Opaque(&'a str),
}

impl Entries {
    pub fn push(&mut self, entry: LayerEntry) {
        let (tag, path) = match entry {
            LayerEntry::File(p, Sniff::NotElf) => (Tag::Plain, p),
            LayerEntry::File(p, sniff) => {
                self.details.push(Detail::Sniff(sniff));
                (Tag::Elf, p)
            }
            LayerEntry::Unreadable(p, e) => {
                self.details.push(Detail::Error(e));
                (Tag::Unreadable, p)
            }
            LayerEntry::Dir(p) => (Tag::Dir, p),
            LayerEntry::Other(p) => (Tag::Other, p),
            LayerEntry::Whiteout(p) => (Tag::Whiteout, p),
            LayerEntry::Opaque(p) => (Tag::Opaque, p),
        };
        self.names.push_str(&path);
        self.items.push((self.names.len(), tag));
    }

    /// Give back what growing left unused, once the layer is read whole.
    pub fn shrink_to_fit(&mut self) {
        self.names.shrink_to_fit();
        self.items.shrink_to_fit();
        self.details.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = Entry<'_>> {
        let mut details = self.details.iter();
        let mut start = 0;
        self.items.iter().map(move |&(end, tag)| {
            let path = &self.names[start..end];
            start = end;
            match tag {
                Tag::Plain => Entry::File(path, None),
                Tag::Elf => match details.next() {
                    Some(Detail::Sniff(s)) => Entry::File(path, Some(s)),
                    _ => Entry::File(path, None),
                },
                Tag::Unreadable => match details.next() {
                    Some(Detail::Error(e)) => Entry::Unreadable(path, e),
                    _ => Entry::Unreadable(path, ""),
                },
                Tag::Dir => Entry::Dir(path),
                Tag::Other => Entry::Other(path),
                Tag::Whiteout => Entry::Whiteout(path),
                Tag::Opaque => Entry::Opaque(path),
            }
        })
    }
}

impl FromIterator<LayerEntry> for Entries {
    fn from_iter<I: IntoIterator<Item = LayerEntry>>(iter: I) -> Entries {
        let mut out = Entries::default();
        for e in iter {
            out.push(e);
        }
        out
    }
}

/// Stack layers (lowest first) as overlayfs would and count what is visible at the top.
/// Walked from the top down: a path is hidden when an upper layer has the same path, deleted
/// it or one of its parents (whiteout), made a parent opaque, or put a non-directory where a
/// parent directory was.
pub fn stack(layers: &[Arc<Layer>], filter: Option<Arc<Expected>>) -> Tally {
    let mut tally = Tally::new(filter);
    let mut same: HashSet<&str> = HashSet::new();
    let mut below: HashSet<&str> = HashSet::new();
    let hidden = |path: &str, same: &HashSet<&str>, below: &HashSet<&str>| {
        if same.contains(path) {
            return true;
        }
        let mut p = path;
        while let Some(i) = p.rfind('/') {
            p = &p[..i];
            let parent = if p.is_empty() { "/" } else { p };
            if below.contains(parent) {
                return true;
            }
        }
        false
    };
    for (i, layer) in layers.iter().enumerate().rev() {
        let mut add_same = Vec::new();
        let mut add_below = Vec::new();
        for entry in layer.entries.iter() {
            match entry {
                Entry::Whiteout(p) => {
                    add_same.push(p);
                    add_below.push(p);
                }
                Entry::Opaque(p) => add_below.push(p),
                Entry::Dir(p) => add_same.push(p),
                Entry::Other(p) => {
                    add_below.push(p);
                    add_same.push(p);
                }
                Entry::File(p, sniff) => {
                    if !hidden(p, &same, &below) {
                        let sniff = sniff.cloned().unwrap_or(Sniff::NotElf);
                        tally.add(p, sniff, Some(&layer.digest));
                    }
                    add_below.push(p);
                    add_same.push(p);
                }
                Entry::Unreadable(p, e) => {
                    if !hidden(p, &same, &below) {
                        tally.unreadable(p, e.to_string(), Some(&layer.digest));
                    }
                    add_same.push(p);
                }
            }
        }
        // A layer's whiteouts and files act on the layers below it, not on itself; the
        // lowest has none below.
        if i > 0 {
            same.extend(add_same);
            below.extend(add_below);
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchTable;
    use crate::scan::Verdict;
    use crate::scan::tests::elf;

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_files() {
        let digest = |d: &str| Arc::<str>::from(d);
        let lower = Layer {
            digest: digest("sha256:lower"),
            entries: Entries::from_iter([
                LayerEntry::Dir("/app".into()),
                LayerEntry::File("/app/server".into(), elf("linux/amd64")),
                LayerEntry::File("/opt/x/tool".into(), elf("linux/amd64")),
                LayerEntry::File("/bin/ok".into(), elf("linux/arm64")),
                LayerEntry::File("/replaced".into(), elf("linux/amd64")),
                LayerEntry::File("/d/under-file".into(), elf("linux/amd64")),
            ]),
        };
        let upper = Layer {
            digest: digest("sha256:upper"),
            entries: Entries::from_iter([
                LayerEntry::Whiteout("/app/server".into()),
                LayerEntry::Opaque("/opt/x".into()),
                LayerEntry::File("/opt/x/new".into(), elf("linux/arm64")),
                LayerEntry::File("/replaced".into(), elf("linux/arm64")),
                LayerEntry::Other("/d".into()),
            ]),
        };
        let t = ArchTable::embedded();
        let tally = stack(&[Arc::new(lower), Arc::new(upper)], None);
        assert_eq!(tally.files, 3, "{tally:?}");
        let v = Verdict::judge(&t, tally, None);
        assert_eq!(v.expected.as_deref(), Some("linux/arm64"));
        assert!(v.inferred && v.ok, "{v:?}");
    }
}
