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
    pub entries: Vec<LayerEntry>,
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
    for layer in layers.iter().rev() {
        let mut add_same = Vec::new();
        let mut add_below = Vec::new();
        for entry in &layer.entries {
            match entry {
                LayerEntry::Whiteout(p) => {
                    add_same.push(p.as_str());
                    add_below.push(p.as_str());
                }
                LayerEntry::Opaque(p) => add_below.push(p.as_str()),
                LayerEntry::Dir(p) => add_same.push(p.as_str()),
                LayerEntry::Other(p) => {
                    add_below.push(p.as_str());
                    add_same.push(p.as_str());
                }
                LayerEntry::File(p, sniff) => {
                    if !hidden(p, &same, &below) {
                        tally.add(p, sniff.clone(), Some(&layer.digest));
                    }
                    add_below.push(p.as_str());
                    add_same.push(p.as_str());
                }
                LayerEntry::Unreadable(p, e) => {
                    if !hidden(p, &same, &below) {
                        tally.unreadable(p, e.clone(), Some(&layer.digest));
                    }
                    add_same.push(p.as_str());
                }
            }
        }
        // A layer's whiteouts and files act on the layers below it, not on itself.
        same.extend(add_same);
        below.extend(add_below);
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
            entries: vec![
                LayerEntry::Dir("/app".into()),
                LayerEntry::File("/app/server".into(), elf("linux/amd64")),
                LayerEntry::File("/opt/x/tool".into(), elf("linux/amd64")),
                LayerEntry::File("/bin/ok".into(), elf("linux/arm64")),
                LayerEntry::File("/replaced".into(), elf("linux/amd64")),
                LayerEntry::File("/d/under-file".into(), elf("linux/amd64")),
            ],
        };
        let upper = Layer {
            digest: digest("sha256:upper"),
            entries: vec![
                LayerEntry::Whiteout("/app/server".into()),
                LayerEntry::Opaque("/opt/x".into()),
                LayerEntry::File("/opt/x/new".into(), elf("linux/arm64")),
                LayerEntry::File("/replaced".into(), elf("linux/arm64")),
                LayerEntry::Other("/d".into()),
            ],
        };
        let t = ArchTable::embedded();
        let tally = stack(&[Arc::new(lower), Arc::new(upper)], None);
        assert_eq!(tally.files, 3, "{tally:?}");
        let v = Verdict::judge(&t, tally, None);
        assert_eq!(v.expected.as_deref(), Some("linux/arm64"));
        assert!(v.inferred && v.ok, "{v:?}");
    }
}
