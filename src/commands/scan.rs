//! `scan IMAGE`: programs of the wrong platform in a root file system, a tar, or an image on
//! disk, in a registry, in the Docker daemon, or on standard input.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::cli::{GlobalArgs, ScanArgs};
use crate::error::{BadArgument, Exit, Failure};
use crate::messages::{self, printable};
use crate::scan::source::Source;
use crate::scan::{self, Expected, ExpectedFrom, Progress, Report, Verdict, registry};

pub fn run(global: &GlobalArgs, args: &ScanArgs) -> Result<Exit, Failure> {
    let table = super::load_table(global)?;
    // Resolve --platform before reading anything, so a typo fails fast and alone. One
    // platform is what every program must be (and picks that image of an index); several
    // pick images of an index, each judged against its own.
    let platforms = match &args.platform {
        Some(list) => list
            .split(',')
            .map(|name| {
                Expected::parse(&table, name.trim())
                    .map_err(|e| BadArgument(format!("--platform: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let platform = match platforms.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    };
    let source = Source::parse(args.path.as_os_str())?;
    let remote = registry::Options {
        creds: match &args.creds {
            Some(c) => Some(credentials(c)?),
            None => None,
        },
        authfile: args.authfile.clone(),
        cert_dir: args.cert_dir.clone(),
        tls_verify: args.tls_verify,
        docker_host: args.daemon_host.clone(),
    };
    let progress = Progress::default();
    let show = !global.quiet && !global.json && std::io::stderr().is_terminal();
    let report = with_progress(show, &progress, || {
        scan::scan_source(&table, &source, &remote, platform.as_ref(), &progress)
    })
    // One line, whatever a hostile member name or header put in the message.
    ?;
    let report = if platforms.len() > 1 {
        scan::source::pick(report, &platforms)?
    } else {
        report
    };

    let preflight = preflight(global, &table, &report);
    if global.json {
        let mut doc = to_json(&report);
        if let (Some(obj), Some(p)) = (doc.as_object_mut(), &preflight) {
            obj.insert("preflight".into(), json!(p));
        }
        messages::json(&doc);
    } else {
        print_human(&report);
        if let Some(p) = &preflight {
            print_preflight(p);
        }
    }
    Ok(if report.ok() && preflight.as_ref().is_none_or(|p| p.ok) {
        Exit::Success
    } else {
        Exit::Problem
    })
}

/// `--creds USER:PASSWORD`, or USER alone with the password asked for on the terminal.
fn credentials(text: &str) -> Result<(String, String), BadArgument> {
    let (user, password) = match text.split_once(':') {
        Some((u, p)) => (u.to_string(), p.to_string()),
        None => (text.to_string(), messages::ask_secret(&format!("password for {text}: ")).map_err(|e| {
            BadArgument(format!(
                "--creds {text}: no password given and none could be asked for ({e}); write --creds USER:PASSWORD"
            ))
        })?),
    };
    if user.is_empty() {
        return Err(BadArgument(
            "--creds: the user name is empty; write --creds USER:PASSWORD".into(),
        ));
    }
    Ok((user, password))
}

/// Will the programs of the root file system or image run on this host (`scan::preflight`)?
fn preflight(
    global: &GlobalArgs,
    table: &crate::arch::ArchTable,
    report: &Report,
) -> Option<scan::preflight::Preflight> {
    let machine = crate::machine::Live::new();
    let snapshot = crate::binfmt::Registry::new(&global.binfmt_dir)
        .snapshot()
        .unwrap_or_else(|_| crate::binfmt::Snapshot::empty());
    if report.kind != scan::Kind::Directory {
        return Some(scan::preflight::check_image(
            &machine,
            table,
            &snapshot,
            &report.images,
        ));
    }
    let expected = report.images.first().and_then(|v| v.expected.clone());
    Some(scan::preflight::check(
        &machine,
        table,
        &snapshot,
        &report.images,
        &report.root,
        expected.as_deref(),
    ))
}

/// ` (linux/arm64, layer sha256:…)` for a program in an image, nothing in a directory.
fn in_image(image: &Option<String>, layer: &Option<String>) -> String {
    let parts: Vec<String> = image
        .iter()
        .map(|i| printable(i))
        .chain(layer.iter().map(|l| format!("layer {}", printable(l))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

fn print_preflight(p: &scan::preflight::Preflight) {
    for w in &p.will_not_run {
        messages::out(&format!(
            "  will not run  {}{}  needs {} ({}); {} runs up to {}, lacking {}",
            printable(&w.path),
            in_image(&w.image, &w.layer),
            w.needs,
            printable(&w.from),
            w.by,
            w.available.unwrap_or("no level"),
            w.lacks.join(", ")
        ));
    }
    for s in &p.setuid_without_c {
        messages::out(&format!(
            "  setuid       {}{}  mode {}: {} has no C, so it runs without its privilege",
            printable(&s.path),
            in_image(&s.image, &s.layer),
            s.mode,
            s.handler
        ));
    }
    if let Some(c) = &p.dir_cookies {
        messages::out(&format!(
            "  dir cookies  {} ({}): largest {:#x}; {}",
            printable(&c.directory),
            c.filesystem,
            c.largest,
            c.advice
        ));
    }
    if !p.will_not_run.is_empty() {
        messages::out(&format!(
            "FAIL: {} program(s) will not run on this host",
            p.will_not_run.len()
        ));
    }
}

/// Run `work` while a thread redraws a progress line on stderr (when `show`): files and ELF
/// files found, and for images from a registry or a stream, the layers and bytes read.
fn with_progress<T>(show: bool, progress: &Progress, work: impl FnOnce() -> T) -> T {
    if !show {
        return work();
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let painter = s.spawn(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let spinner = ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let download = ProgressStyle::with_template(
                "{spinner} {msg} [{bar:24}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(spinner.clone());
            let mut downloading = false;
            loop {
                // Woken early when the work is done, so a quick scan is not kept waiting.
                std::thread::park_timeout(Duration::from_millis(150));
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                let (files, elf) = (get(&progress.files), get(&progress.elf_files));
                let (bytes, total) = (get(&progress.bytes), get(&progress.bytes_total));
                let (layers, layers_total) = (get(&progress.layers), get(&progress.layers_total));
                if total > 0 {
                    bar.set_length(total);
                    bar.set_position(bytes.min(total));
                    bar.set_message(format!(
                        "layers {layers}/{layers_total}, {files} files, {elf} ELF"
                    ));
                    if !downloading {
                        bar.set_style(download.clone());
                        downloading = true;
                    }
                } else if bytes > 0 {
                    bar.set_message(format!(
                        "scanning: {files} files, {elf} ELF, {} read",
                        indicatif::HumanBytes(bytes)
                    ));
                } else {
                    bar.set_message(format!("scanning: {files} files, {elf} ELF"));
                }
                bar.tick();
            }
            bar.finish_and_clear();
        });
        let out = work();
        done.store(true, Ordering::Relaxed);
        painter.thread().unpark();
        out
    })
}

/// The JSON document: the keys the README documents at the top (summed over images), and per image
/// the same keys under `images` for OCI layouts and `docker save` archives.
fn to_json(report: &Report) -> Value {
    let one = (report.images.len() == 1).then(|| &report.images[0]);
    let mut by_platform: BTreeMap<&str, u64> = BTreeMap::new();
    for v in &report.images {
        for (p, n) in &v.by_platform {
            *by_platform.entry(p).or_default() += n;
        }
    }
    let all = |f: fn(&Verdict) -> Vec<Value>| -> Vec<Value> {
        report.images.iter().flat_map(f).collect()
    };
    let mut doc = json!({
        "root": report.root.display().to_string(),
        "kind": report.kind.as_str(),
        "expected": one.and_then(|v| v.expected.clone()),
        "expected_from": one.map(|v| v.expected_from),
        "inferred": report.images.iter().any(|v| v.inferred),
        "files": report.images.iter().map(|v| v.files).sum::<u64>(),
        "elf_files": report.images.iter().map(|v| v.elf_files).sum::<u64>(),
        "by_platform": by_platform,
        "mismatches": all(|v| v.mismatches.iter().map(|m| json!(m)).collect()),
        "broken": all(|v| v.broken.iter().map(|m| json!(m)).collect()),
        "unreadable": all(|v| v.unreadable.iter().map(|m| json!(m)).collect()),
        "ok": report.ok(),
    });
    if let Some(obj) = doc.as_object_mut() {
        if let Some(c) = report.compression {
            obj.insert("compression".into(), c.into());
        }
        if matches!(
            report.kind,
            scan::Kind::Oci | scan::Kind::Archive | scan::Kind::Registry
        ) {
            obj.insert("images".into(), json!(report.images));
        }
    }
    doc
}

fn print_human(report: &Report) {
    let root = printable(&report.root.display().to_string());
    let kind = match report.compression {
        Some(c) => format!("{}, {c}", report.kind.as_str()),
        None => report.kind.as_str().to_string(),
    };
    let images = report.images.len();
    if images > 1 {
        messages::out(&format!("{root} ({kind}, {images} images)"));
    } else {
        messages::out(&format!("{root} ({kind})"));
    }
    for v in &report.images {
        if images > 1 || v.manifest.is_some() {
            let platform = v.platform.as_deref().unwrap_or("(no platform)");
            messages::out(&match &v.manifest {
                Some(m) => format!("image {platform} {m}"),
                None => format!("image {platform}"),
            });
        }
        print_verdict(v);
    }
    messages::out(&summary(report));
}

fn print_verdict(v: &Verdict) {
    let expected = match (&v.expected, v.expected_from) {
        (Some(x), ExpectedFrom::Flag) => format!("expected {x} (--platform)"),
        (Some(x), ExpectedFrom::Image) => format!("expected {x} (image config)"),
        (Some(x), _) => format!(
            "expected {x} (inferred: {} of {} ELF files)",
            v.by_platform.get(x).copied().unwrap_or(0),
            v.elf_files
        ),
        (None, _) => "expected platform unknown (no ELF program to infer it from)".to_string(),
    };
    messages::out(&format!("  {expected}"));
    let counts: Vec<String> = {
        let mut c: Vec<(&String, &u64)> = v.by_platform.iter().collect();
        c.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        c.into_iter().map(|(p, n)| format!("{p} {n}")).collect()
    };
    let counts = if counts.is_empty() {
        String::new()
    } else {
        format!(": {}", counts.join(", "))
    };
    messages::out(&format!("  {} files, {} ELF{counts}", v.files, v.elf_files));
    let layer = |l: &Option<String>| match l {
        Some(l) => format!("  layer {l}"),
        None => String::new(),
    };
    let width = v
        .mismatches
        .iter()
        .map(|m| m.path.chars().count())
        .chain(v.broken.iter().map(|p| p.path.chars().count()))
        .chain(v.unreadable.iter().map(|p| p.path.chars().count()))
        .max()
        .unwrap_or(0)
        .min(messages::MAX_COLUMN);
    for m in &v.mismatches {
        messages::out(&format!(
            "  mismatch    {:<width$}  {} {}{}",
            printable(&m.path),
            m.platform,
            m.kind,
            layer(&m.layer)
        ));
    }
    for p in &v.broken {
        messages::out(&format!(
            "  broken      {:<width$}  {}{}",
            printable(&p.path),
            printable(&p.error),
            layer(&p.layer)
        ));
    }
    for p in &v.unreadable {
        messages::out(&format!(
            "  unreadable  {:<width$}  {}{}",
            printable(&p.path),
            printable(&p.error),
            layer(&p.layer)
        ));
    }
}

/// The one verdict line.
fn summary(report: &Report) -> String {
    let parts: Vec<String> = report
        .images
        .iter()
        .filter(|v| !v.ok)
        .map(|v| {
            let mut bits = Vec::new();
            let want = v.expected.as_deref().unwrap_or("the expected platform");
            match v.mismatches.len() {
                0 => {}
                1 => bits.push(format!("1 program is not {want}")),
                n => bits.push(format!("{n} programs are not {want}")),
            }
            match v.broken.len() {
                0 => {}
                1 => bits.push("1 damaged ELF file".to_string()),
                n => bits.push(format!("{n} damaged ELF files")),
            }
            match v.unreadable.len() {
                0 => {}
                1 => bits.push("1 file could not be read".to_string()),
                n => bits.push(format!("{n} files could not be read")),
            }
            match (&v.platform, report.images.len()) {
                (Some(p), n) if n > 1 => format!("{p}: {}", bits.join(", ")),
                _ => bits.join(", "),
            }
        })
        .collect();
    if parts.is_empty() {
        let elf: u64 = report.images.iter().map(|v| v.elf_files).sum();
        let expected: Vec<&str> = report
            .images
            .iter()
            .filter_map(|v| v.expected.as_deref())
            .collect();
        if elf == 0 {
            "ok: no ELF files".to_string()
        } else {
            format!("ok: all {elf} ELF files fit {}", expected.join(", "))
        }
    } else {
        format!("FAIL: {}", parts.join("; "))
    }
}
