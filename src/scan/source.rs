//! Where an image lives, from the one argument `scan` takes: the transports skopeo and
//! podman name (`docker://`, `docker-daemon:`, `oci:`, `docker-archive:`), `-` for a
//! stream on standard input, or a bare path, read as it always was.

use std::ffi::OsStr;
use std::path::PathBuf;

use super::{Expected, Kind, Report, ScanError};

/// What one argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A directory, tar file, OCI layout or image archive on disk.
    Path(PathBuf),
    /// `docker://HOST/REPO[:TAG][@DIGEST]`: an image in a registry (the part after `//`).
    Registry(String),
    /// `docker-daemon:NAME[:TAG]` or an image id: an image the local Docker Engine holds.
    Daemon(String),
    /// `oci:DIR[:REF]`: an OCI layout, narrowed to the images REF names.
    Layout {
        dir: PathBuf,
        reference: Option<String>,
    },
    /// `docker-archive:FILE`, `oci-archive:FILE`: an image archive (a tar) on disk.
    Archive(PathBuf),
    /// `-`: a tar stream or `docker save` output on standard input.
    Stdin,
}

/// The transports, as `--help` and errors list them.
pub const TRANSPORTS: &str = "docker://HOST/REPO:TAG, docker-daemon:NAME:TAG, oci:DIR[:REF], docker-archive:FILE, or - for standard input";

impl Source {
    /// Read an argument. A path that exists is a path, whatever it looks like, so every
    /// argument scan took before means what it meant; otherwise a transport prefix decides.
    pub fn parse(arg: &OsStr) -> Result<Source, ScanError> {
        if arg == "-" {
            return Ok(Source::Stdin);
        }
        let path = PathBuf::from(arg);
        if std::fs::symlink_metadata(&path).is_ok() {
            return Ok(Source::Path(path));
        }
        let Some(text) = arg.to_str() else {
            return Ok(Source::Path(path));
        };
        let empty = |transport: &str, wants: &str| {
            ScanError::new(format!(
                "{text}: {transport} needs {wants} after it (transports: {TRANSPORTS})"
            ))
        };
        if let Some(rest) = text.strip_prefix("docker://") {
            if rest.is_empty() {
                return Err(empty("docker://", "HOST/REPO:TAG"));
            }
            return Ok(Source::Registry(rest.to_string()));
        }
        if let Some(rest) = text.strip_prefix("docker-daemon:") {
            if rest.is_empty() {
                return Err(empty("docker-daemon:", "an image NAME:TAG or id"));
            }
            return Ok(Source::Daemon(rest.to_string()));
        }
        if let Some(rest) = text.strip_prefix("oci:") {
            if rest.is_empty() {
                return Err(empty("oci:", "a layout directory"));
            }
            return Ok(layout(rest));
        }
        for transport in ["docker-archive:", "oci-archive:"] {
            if let Some(rest) = text.strip_prefix(transport) {
                if rest.is_empty() {
                    return Err(empty(transport, "a FILE"));
                }
                return Ok(Source::Archive(PathBuf::from(rest)));
            }
        }
        // Transports skopeo knows that scan does not read: say so rather than "no such file".
        if let Some((word, _)) = text.split_once(':')
            && matches!(
                word,
                "containers-storage" | "dir" | "ostree" | "sif" | "docker-image"
            )
        {
            return Err(ScanError::new(format!(
                "{text}: scan does not read the {word}: transport; it reads {TRANSPORTS}, or a path"
            )));
        }
        Ok(Source::Path(path))
    }
}

/// `DIR[:REF]`: the whole is the directory when it exists, else the part after the last
/// `:` is the reference.
fn layout(rest: &str) -> Source {
    let whole = PathBuf::from(rest);
    if whole.is_dir() {
        return Source::Layout {
            dir: whole,
            reference: None,
        };
    }
    match rest.rsplit_once(':') {
        Some((dir, reference)) if !dir.is_empty() && !reference.is_empty() => Source::Layout {
            dir: PathBuf::from(dir),
            reference: Some(reference.to_string()),
        },
        _ => Source::Layout {
            dir: whole,
            reference: None,
        },
    }
}

/// An index.json with only the descriptors `reference` names: by tag or by digest.
pub(super) fn narrow(index: &[u8], reference: &str, what: &str) -> Result<Vec<u8>, ScanError> {
    let mut doc: serde_json::Value = serde_json::from_slice(index)
        .map_err(|e| ScanError::new(format!("{what} is malformed: {e}")))?;
    let Some(list) = doc.get_mut("manifests").and_then(|m| m.as_array_mut()) else {
        return Err(ScanError::new(format!(
            "{what} is malformed: no manifests list"
        )));
    };
    let tags: Vec<String> = list
        .iter()
        .filter_map(|d| d["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .map(str::to_string)
        .collect();
    list.retain(|d| {
        d["annotations"]["org.opencontainers.image.ref.name"] == reference
            || d["digest"] == reference
    });
    if list.is_empty() {
        let known = if tags.is_empty() {
            "it names no tags".to_string()
        } else {
            format!("its tags are {}", tags.join(", "))
        };
        return Err(ScanError::new(format!(
            "{what} has no image named '{reference}'; {known}"
        )));
    }
    serde_json::to_vec(&doc).map_err(|e| ScanError::new(format!("{what}: {e}")))
}

/// `--platform A,B`: keep the images of those platforms, each judged against its own; a
/// platform the image has no image for is bad input, as is a list for a lone tree.
pub fn pick(mut report: Report, platforms: &[Expected]) -> Result<Report, ScanError> {
    let root = report.root.display().to_string();
    if matches!(report.kind, Kind::Directory | Kind::Tar) {
        return Err(ScanError::new(format!(
            "{root}: several platforms pick images of an index, and a {} has one platform: give one --platform",
            report.kind.as_str()
        )));
    }
    let wanted: Vec<String> = platforms.iter().map(Expected::platform).collect();
    let has: Vec<String> = report
        .images
        .iter()
        .filter_map(|v| v.expected.clone())
        .collect();
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|w| !has.contains(w))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(ScanError::new(format!(
            "{root} has no image for {}; it has {}",
            missing.join(", "),
            has.join(", ")
        )));
    }
    report
        .images
        .retain(|v| v.expected.as_ref().is_some_and(|x| wanted.contains(x)));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Source {
        Source::parse(OsStr::new(s)).expect(s)
    }

    #[test]
    fn transports_and_paths() {
        assert_eq!(parse("-"), Source::Stdin);
        assert_eq!(
            parse("docker://127.0.0.1:5000/app:1"),
            Source::Registry("127.0.0.1:5000/app:1".into())
        );
        assert_eq!(
            parse("docker-daemon:localhost/app:1"),
            Source::Daemon("localhost/app:1".into())
        );
        assert_eq!(
            parse("oci:/no/such/layout:arm64"),
            Source::Layout {
                dir: "/no/such/layout".into(),
                reference: Some("arm64".into())
            }
        );
        assert_eq!(
            parse("docker-archive:/no/img.tar"),
            Source::Archive("/no/img.tar".into())
        );
        // An existing path keeps its meaning, colon or not; a missing one stays a path.
        let dir = tempfile::tempdir().expect("tempdir");
        let odd = dir.path().join("docker:x");
        std::fs::create_dir(&odd).expect("mkdir");
        assert_eq!(
            Source::parse(odd.as_os_str()).expect("odd"),
            Source::Path(odd.clone())
        );
        assert_eq!(
            parse(&format!("oci:{}", dir.path().display())),
            Source::Layout {
                dir: dir.path().to_path_buf(),
                reference: None
            }
        );
        assert_eq!(
            parse("no/such/rootfs"),
            Source::Path("no/such/rootfs".into())
        );
        assert!(Source::parse(OsStr::new("docker://")).is_err());
        assert!(Source::parse(OsStr::new("containers-storage:x")).is_err());
    }

    #[test]
    fn a_layout_reference_narrows_its_index() {
        let index = br#"{"schemaVersion":2,"manifests":[
            {"digest":"sha256:a","annotations":{"org.opencontainers.image.ref.name":"arm64"}},
            {"digest":"sha256:b","annotations":{"org.opencontainers.image.ref.name":"s390x"}}]}"#;
        let one: serde_json::Value =
            serde_json::from_slice(&narrow(index, "s390x", "index.json").expect("s390x"))
                .expect("json");
        assert_eq!(one["manifests"].as_array().map(Vec::len), Some(1));
        assert_eq!(one["manifests"][0]["digest"], "sha256:b");
        let e = narrow(index, "amd64", "index.json").expect_err("no such tag");
        assert!(e.0.contains("arm64, s390x"), "{e}");
    }
}
