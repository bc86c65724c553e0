//! 10,000 random and mutated headers through the real binary: every one gets a report, and
//! the binary never panics, hangs, or fails to produce JSON.

use std::path::PathBuf;

use crate::util::{fixtures, run};

/// splitmix64: a tiny deterministic generator, so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Byte offsets worth hitting: identity, type/machine, table offsets and counts (32 and 64).
const HOT: &[usize] = &[
    4, 5, 6, 7, 16, 17, 18, 19, 28, 29, 32, 33, 36, 37, 42, 44, 45, 46, 48, 49, 52, 54, 56, 57, 58,
    60, 62,
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    match rng.below(6) {
        // Flip random bytes of the first 256 (headers, program headers).
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len().min(256));
                b[i] = rng.next() as u8;
            }
        }
        // Hit header fields with extreme values.
        1 => {
            for _ in 0..1 + rng.below(4) {
                let i = HOT[rng.below(HOT.len())];
                if i < b.len() {
                    b[i] = [0x00, 0xff, 0x7f, 0x80, 0x01][rng.below(5)];
                }
            }
        }
        // Truncate anywhere.
        2 => b.truncate(rng.below(b.len() + 1)),
        // Random bytes behind a valid magic of some format.
        3 => {
            let n = rng.below(600);
            let prefix: &[u8] = [
                &b"\x7fELF"[..],
                b"\xca\xfe\xba\xbe",
                b"\xcf\xfa\xed\xfe",
                b"MZ",
                b"#!",
            ][rng.below(5)];
            b = prefix.to_vec();
            b.extend((0..n).map(|_| rng.next() as u8));
        }
        // Point program/section header tables far away or make counts huge.
        4 => {
            let i = [32, 40, 44, 48, 56, 60][rng.below(6)];
            if i + 8 <= b.len() {
                b[i..i + 8].copy_from_slice(&rng.next().to_le_bytes());
            }
        }
        // Splice two seeds' worth: keep the head, garbage the rest.
        _ => {
            let keep = rng.below(b.len().min(128) + 1);
            b.truncate(keep);
            b.extend((0..rng.below(512)).map(|_| rng.next() as u8));
        }
    }
    b
}

#[test]
fn ten_thousand_mutated_headers_never_panic() {
    let seeds: Vec<Vec<u8>> = std::fs::read_dir(fixtures())
        .expect("fixtures")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter(|b| !b.is_empty())
        .collect();
    assert!(seeds.len() > 20, "too few seeds");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(0x5eed_b1f7);
    let total = 10_000;
    let batch = 1_000;
    for start in (0..total).step_by(batch) {
        let paths: Vec<PathBuf> = (start..start + batch)
            .map(|i| {
                let seed = &seeds[rng.below(seeds.len())];
                let p = dir.path().join(format!("m{i}"));
                std::fs::write(&p, mutate(&mut rng, seed)).expect("write");
                p
            })
            .collect();
        let mut args = vec!["inspect", "--json"];
        args.extend(paths.iter().map(|p| p.to_str().unwrap_or_default()));
        let r = run(&args);
        assert!(
            matches!(r.code, Some(0 | 1)),
            "batch at {start}: exit {:?}\n{}",
            r.code,
            r.stderr
        );
        assert!(
            !r.stderr.contains("panicked"),
            "batch at {start}: {}",
            r.stderr
        );
        assert_eq!(
            r.json().as_array().map(Vec::len),
            Some(batch),
            "batch at {start}"
        );
        for p in &paths {
            let _ = std::fs::remove_file(p);
        }
    }
}
