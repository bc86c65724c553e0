//! `completions` and `man`: generated from the command-line definitions, and usable by the
//! programs that read them.

use std::process::Command;

use crate::util::{Run, run};

/// bash parses the completion script, and once sourced it completes binfmt-setup's own
/// commands.
#[test]
fn bash_reads_the_completion_script_and_completes_commands() {
    let r = run(&["completions", "bash"]);
    r.expect_code(0);
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("binfmt-setup.bash");
    std::fs::write(&script, &r.stdout).expect("write");
    let check = Run::capture(Command::new("bash").arg("-n").arg(&script));
    check.expect_code(0);
    // Ask the completion function `complete -p` names what follows `binfmt-setup ins`.
    let probe = format!(
        "source {}; f=$(complete -p binfmt-setup | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p'); COMP_WORDS=(binfmt-setup ins); COMP_CWORD=1; COMP_LINE='binfmt-setup ins'; COMP_POINT=${{#COMP_LINE}}; \"$f\" binfmt-setup ins binfmt-setup; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let r = Run::capture(Command::new("bash").args(["-c", &probe]));
    r.expect_code(0);
    assert!(r.stdout.lines().any(|l| l == "install"), "{}", r.stdout);
    for shell in ["zsh", "fish"] {
        let r = run(&["completions", shell]);
        r.expect_code(0);
        assert!(r.stdout.contains("binfmt-setup"), "{shell}");
    }
    assert_eq!(run(&["completions", "tcsh"]).code, Some(2));
}

/// `man -l` renders the program's page and each command's, with the exit codes and the
/// options of that command.
#[test]
fn man_renders_the_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (command, says) in [
        (None, "Exit codes"),
        (Some("install"), "--replace-foreign"),
        (Some("diagnose"), "INTERPRETER_NOT_IN_ROOT"),
    ] {
        let mut args = vec!["man"];
        args.extend(command);
        let r = run(&args);
        r.expect_code(0);
        let page = dir.path().join("page.1");
        std::fs::write(&page, &r.stdout).expect("write");
        let shown = Run::capture(
            Command::new("man")
                .args(["-l", "-P", "cat"])
                .arg(&page)
                .env("MANWIDTH", "100"),
        );
        shown.expect_code(0);
        assert!(
            shown.stdout.contains(says),
            "{command:?}:\n{}",
            shown.stdout
        );
        assert!(!shown.stderr.contains("warning"), "{}", shown.stderr);
    }
    let r = run(&["man", "nope"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("install"), "{}", r.stderr);
}
