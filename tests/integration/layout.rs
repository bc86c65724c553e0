//! The layout rules docs/ARCHITECTURE.md states, checked on the source itself: no file in
//! src/ over 700 lines, only the process layer forks or execs, no command imports another,
//! and no import cycle among modules (a module's own ancestors and descendants aside: a
//! parent that dispatches to a child the child may use the parent's types).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::util::repo;

/// Every `.rs` file under src/, with its module path (`["scan", "oci"]`).
fn modules() -> BTreeMap<Vec<String>, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = repo().join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files
        .into_iter()
        .map(|f| {
            let rel = f.strip_prefix(&src).expect("under src").with_extension("");
            let mut path: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if path.last().is_some_and(|l| l == "mod") {
                path.pop();
            }
            if path == ["lib"] || path == ["main"] {
                path.clear();
            }
            (path, f)
        })
        .collect()
}

/// The code of a file without comments and without its unit tests.
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("read");
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand(path: &str) -> Vec<String> {
    let path: String = path.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = path.find('{') else {
        return vec![path];
    };
    let mut depth = 0;
    let mut close = open;
    for (i, c) in path.char_indices().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = i;
                    break;
                }
            }
            _ => {}
        }
    }
    let (prefix, inner, suffix) = (&path[..open], &path[open + 1..close], &path[close + 1..]);
    let mut parts = Vec::new();
    let (mut depth, mut current) = (0, String::new());
    for c in inner.chars() {
        match c {
            ',' if depth == 0 => parts.push(std::mem::take(&mut current)),
            '{' => {
                depth += 1;
                current.push(c);
            }
            '}' => {
                depth -= 1;
                current.push(c);
            }
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| {
            if p == "self" {
                vec![prefix.trim_end_matches(':').to_string()]
            } else {
                expand(&format!("{prefix}{p}{suffix}"))
            }
        })
        .collect()
}

/// The module a path in module `me` names, if it is one of ours.
fn resolve(me: &[String], path: &str, all: &BTreeMap<Vec<String>, PathBuf>) -> Option<Vec<String>> {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let (mut base, rest): (Vec<String>, &[&str]) = match segs.first()? {
        &"crate" => (Vec::new(), &segs[1..]),
        &"super" | &"self" => {
            let mut base = me.to_vec();
            let mut i = 0;
            while let Some(s) = segs.get(i).filter(|s| **s == "super" || **s == "self") {
                if *s == "super" {
                    base.pop();
                }
                i += 1;
            }
            (base, &segs[i..])
        }
        first => {
            let mut child = me.to_vec();
            child.push((*first).to_string());
            if !all.contains_key(&child) {
                return None;
            }
            (me.to_vec(), &segs[..])
        }
    };
    base.extend(
        rest.iter()
            .map(|s| s.split(" as ").next().unwrap_or(s).to_string()),
    );
    (0..=base.len())
        .rev()
        .map(|n| base[..n].to_vec())
        .find(|m| all.contains_key(m))
}

/// Each module's imports of other modules, ancestors and descendants left out.
fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let all = modules();
    let mut graph = BTreeMap::new();
    for (me, file) in &all {
        let text = code(file);
        let mut paths: Vec<String> = Vec::new();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("use ") {
            let before = rest[..i].chars().last();
            rest = &rest[i + 4..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(end) = rest.find(';') {
                paths.extend(expand(&rest[..end]));
            }
        }
        for word in text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
            if word.starts_with("crate::") || word.starts_with("super::") {
                paths.push(word.to_string());
            }
        }
        let edges: BTreeSet<Vec<String>> = paths
            .iter()
            .filter_map(|p| resolve(me, p.trim_end_matches("::*"), &all))
            .filter(|t| !t.is_empty() && !t.starts_with(me) && !me.starts_with(t))
            .collect();
        graph.insert(me.clone(), edges);
    }
    graph
}

/// A cycle through `start`, if there is one.
fn cycle_from(
    graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    start: &Vec<String>,
) -> Option<Vec<Vec<String>>> {
    let mut stack = vec![(start.clone(), vec![start.clone()])];
    let mut seen = BTreeSet::new();
    while let Some((node, trail)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                return Some(trail);
            }
            if seen.insert(next.clone()) {
                let mut t = trail.clone();
                t.push(next.clone());
                stack.push((next.clone(), t));
            }
        }
    }
    None
}

#[test]
fn no_import_cycle_among_modules() {
    let graph = graph();
    assert!(
        graph.len() > 50,
        "the source was not found: {}",
        graph.len()
    );
    for m in graph.keys() {
        if let Some(trail) = cycle_from(&graph, m) {
            let names: Vec<String> = trail.iter().map(|m| m.join("::")).collect();
            panic!("import cycle: {} -> back", names.join(" -> "));
        }
    }
    // The cycles this rule was written against are gone for good.
    let arch = vec!["arch".to_string()];
    assert!(
        !graph[&arch]
            .iter()
            .any(|t| t.first().is_some_and(|f| f == "binfmt")),
        "arch imports binfmt"
    );
}

#[test]
fn no_source_file_is_over_700_lines() {
    for (m, file) in modules() {
        let lines = std::fs::read_to_string(&file)
            .expect("read")
            .lines()
            .count();
        assert!(
            lines <= 700,
            "{} ({}) has {lines} lines",
            file.display(),
            m.join("::")
        );
    }
}

/// Only sys::exec forks and execs: every program this tool starts goes through one set of
/// rules (sys/exec), and its child's steps through one file (sys/exec/child.rs).
#[test]
fn only_the_process_layer_forks_or_execs() {
    for (m, file) in modules() {
        if m.starts_with(&["sys".to_string(), "exec".to_string()]) {
            continue;
        }
        let text = code(&file);
        for needle in [
            "fork(",
            "execve(",
            "execv(",
            "execvp(",
            "Command::new",
            "pre_exec",
        ] {
            assert!(
                !text.contains(needle),
                "{} calls {needle}: start programs through sys::exec",
                file.display()
            );
        }
    }
}

/// A command gathers input, calls the library and prints: none imports another.
#[test]
fn no_command_imports_another() {
    let graph = graph();
    for (m, edges) in &graph {
        if m.first().is_some_and(|f| f == "commands") && m.len() == 2 {
            for t in edges {
                assert!(
                    !(t.first().is_some_and(|f| f == "commands") && t.len() == 2),
                    "{} imports {}",
                    m.join("::"),
                    t.join("::")
                );
            }
        }
    }
}
