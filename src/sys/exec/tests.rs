//! The process layer, run for real.

use std::time::Duration;

use super::*;

fn sh(script: &str) -> Spec {
    Spec::new("/bin/sh").argv(["sh", "-c", script])
}

#[test]
fn exit_codes_and_signals_are_told_apart() {
    let out = run(&sh("exit 7"), None).expect("spawn");
    assert_eq!(out.ending, Ending::Exited(7));
    let out = run(&sh("kill -SEGV $$"), None).expect("spawn");
    assert_eq!(out.ending, Ending::Signaled(libc::SIGSEGV));
    assert_eq!(signal_name(libc::SIGSEGV), "SIGSEGV");
    assert_eq!(out.ending.shell_status(), Some(128 + 11));
}

/// The kernel's own answer, not execvp's: a file without `#!` is ENOEXEC, not a shell
/// script, and the step is exec.
#[test]
fn exec_failures_come_back_with_their_step_and_errno() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("text");
    write_program(&text, b"echo not run\n").expect("write");
    let out = run(&Spec::new(&text), None).expect("spawn");
    assert_eq!(out.ending.exec_errno(), Some(Errno::ENOEXEC));
    assert!(out.stdout.is_empty());
    let out = run(&Spec::new(dir.path().join("missing")), None).expect("spawn");
    assert_eq!(out.ending.exec_errno(), Some(Errno::ENOENT));
    let out = run(
        &Spec::new("/x").chroot(dir.path().join("nowhere"), ChrootFallback::None),
        None,
    )
    .expect("spawn");
    assert!(
        matches!(
            out.ending,
            Ending::Failed {
                step: Step::Chroot,
                ..
            }
        ),
        "{:?}",
        out.ending
    );
}

/// Output is read while the child runs: 1 MiB through a 64 KiB pipe does not stall it,
/// and what passes the limit is counted as truncated.
#[test]
fn output_is_drained_while_the_child_runs() {
    let spec =
        sh("head -c 1048576 /dev/zero; echo done >&2").output(Output::Capture { limit: 4096 });
    let out = run(&spec, Some(Duration::from_secs(20))).expect("spawn");
    assert_eq!(out.ending, Ending::Exited(0));
    assert_eq!(out.stdout.len(), 4096);
    assert!(out.truncated);
    assert_eq!(out.stderr, b"done\n");
}

/// A timeout kills the whole process group: the child's own children too.
#[test]
fn a_timeout_kills_the_whole_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mark = dir.path().join("grandchild");
    let script = format!("(sleep 1; touch {}) & sleep 30", mark.display());
    let spec = sh(&script).new_process_group();
    let out = run(&spec, Some(Duration::from_millis(200))).expect("spawn");
    assert_eq!(out.ending, Ending::TimedOut);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!mark.exists(), "the grandchild outlived the timeout");
}

/// Each outcome is handed over as soon as its child is done, while slower ones still run;
/// the list returned keeps the children's order.
#[test]
fn a_pool_hands_over_each_child_as_it_finishes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mark = dir.path().join("slow-ended");
    let specs = [
        sh(&format!("sleep 2; touch {}; echo slow", mark.display())),
        sh("echo fast"),
    ];
    let mut seen = Vec::new();
    let all = Pool::start(specs.to_vec(), 2).wait_each(Some(Duration::from_secs(20)), |i, o| {
        seen.push((i, o.stdout.clone(), mark.exists()));
    });
    assert_eq!(
        seen,
        [
            (1, b"fast\n".to_vec(), false),
            (0, b"slow\n".to_vec(), true)
        ],
        "the fast one is told while the slow one still runs"
    );
    assert_eq!(all[0].stdout, b"slow\n");
    assert_eq!(all[1].stdout, b"fast\n");
}

/// No more than the limit run at once, and every program runs: a third one waits for a
/// place, which the first frees long before the second ends.
#[test]
fn a_pool_runs_at_most_its_limit_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let specs = vec![
        sh(&format!("touch {d}/a; sleep 0.2; rm {d}/a")),
        sh(&format!(
            "touch {d}/b; sleep 3; test -e {d}/c; echo $? > {d}/c-during-b"
        )),
        sh(&format!(
            "test -e {d}/a; echo $? > {d}/a-during-c; touch {d}/c"
        )),
    ];
    let all = Pool::start(specs, 2)
        .holding(Duration::from_secs(20))
        .wait_each(Some(Duration::from_secs(20)), |_, _| {});
    assert!(all.iter().all(|o| o.ending == Ending::Exited(0)), "{all:?}");
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).expect("mark");
    // The third started after the first had ended (and removed its mark), and while the
    // second still ran (it saw the third's mark).
    assert_eq!(read("a-during-c"), "1\n");
    assert_eq!(read("c-during-b"), "0\n");
}

/// A program that hangs gives up its place after a while: the one waiting behind it runs
/// and is handed over long before the first is killed at its timeout.
#[test]
fn a_hanging_program_does_not_hold_its_place_until_its_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mark = dir.path().join("second-ran");
    let specs = vec![sh("sleep 30"), sh(&format!("touch {}", mark.display()))];
    let mut told = Vec::new();
    let all = Pool::start(specs, 1).wait_each(Some(Duration::from_secs(3)), |i, o| {
        told.push((i, o.ending));
    });
    assert!(mark.exists());
    assert_eq!(told, [(1, Ending::Exited(0)), (0, Ending::TimedOut)]);
    assert_eq!(all[0].ending, Ending::TimedOut);
}

/// A thread's pools share their places: a pool started later goes ahead of the programs
/// still waiting in an earlier one, and waiting for the earlier one runs it too.
#[test]
fn pools_of_one_thread_share_their_places() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let first = Pool::start(
        vec![
            sh(&format!("touch {d}/a1; sleep 0.3; rm {d}/a1")),
            sh(&format!("touch {d}/a2")),
        ],
        1,
    )
    .holding(Duration::from_secs(20));
    // Nothing of this one starts now: the first pool's program holds the only place.
    let second = Pool::start(
        vec![sh(&format!(
            "test -e {d}/a1; echo $? > {d}/a1-during-b; test -e {d}/a2; echo $? > {d}/a2-before-b"
        ))],
        1,
    );
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f));
    assert!(read("a1-during-b").is_err(), "started beyond the limit");
    let all = first.wait_each(Some(Duration::from_secs(20)), |_, _| {});
    assert!(all.iter().all(|o| o.ending == Ending::Exited(0)), "{all:?}");
    // It ran while the first pool was waited for, after a1 and before a2.
    assert_eq!(read("a1-during-b").expect("ran"), "1\n");
    assert_eq!(read("a2-before-b").expect("ran"), "1\n");
    let theirs = second.wait_each(Some(Duration::from_secs(20)), |_, _| {});
    assert_eq!(theirs[0].ending, Ending::Exited(0));
}

/// A program written by one thread is never busy for its exec because another thread started
/// a child meanwhile (CI once failed so: the child held a copy of the write descriptor).
#[test]
fn programs_written_while_other_threads_start_children_are_not_busy() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().expect("tempdir");
    let program = std::fs::read("/bin/true").expect("/bin/true");
    let done = AtomicBool::new(false);
    let busy = std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    run(&Spec::new("/bin/true"), None).expect("spawn");
                }
            });
        }
        let busy: Vec<String> = (0..300)
            .filter_map(|n| {
                let path = dir.path().join(format!("p{n}"));
                write_program(&path, &program).expect("write");
                let out = run(&Spec::new(&path), None).expect("spawn");
                (out.ending != Ending::Exited(0)).then(|| format!("program {n}: {out:?}"))
            })
            .collect();
        done.store(true, Ordering::Relaxed);
        busy
    });
    assert!(busy.is_empty(), "{busy:#?}");
}

/// The file the kernel ran for a child is seen just after its exec.
#[test]
fn the_file_a_child_runs_is_seen() {
    let out = run(&sh("sleep 0.1"), None).expect("spawn");
    let shell = std::fs::metadata("/bin/sh").expect("/bin/sh");
    assert_eq!(out.exe, Some(FileId::of(&shell)));
    let failed = run(&Spec::new("/nonexistent/program"), None).expect("spawn");
    assert_eq!(failed.exe, None);
}
