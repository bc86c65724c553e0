use super::*;
use crate::machine::Fake;
use crate::machine::testing::arch;

const T: Duration = Duration::from_secs(5);

fn exited(code: i32) -> Reply {
    Reply {
        exit: Some(code),
        ..Reply::default()
    }
}

fn levels(f: Fake, name: &str, ext: Option<&str>, emulated: bool) -> (Option<Proven>, Fake) {
    let s = Subject {
        arch: arch(name),
        extension: ext,
        emulated,
        interpreter: None,
    };
    let out = start(&f, &[s], true, T).finish();
    (out.into_iter().next().flatten(), f)
}

/// A QEMU for ppc64le whose default run exits `default` and whose run with
/// QEMU_CPU=power10, if it answers at all, exits `lifted`.
fn ppc64le(default: i32, lifted: Option<i32>) -> Fake {
    let f = Fake::new().reply("ppc64le", AskProgram::Levels, None, &[], exited(default));
    match lifted {
        Some(code) => f.reply(
            "ppc64le",
            AskProgram::Levels,
            None,
            &[("QEMU_CPU", "power10")],
            exited(code),
        ),
        None => f,
    }
}

/// ppc64le under QEMU 7.2: POWER9 by default; POWER10 with QEMU_CPU=power10, proven by a
/// second run of the probe with it.
#[test]
fn a_qemu_cpu_value_is_reported_only_when_a_second_run_proves_it() {
    let f = ppc64le(100 + 0b011, Some(100 + 0b111));
    let (p, f) = levels(f, "ppc64le", None, true);
    let p = p.expect("proven");
    assert_eq!(p.highest, Some("power9"));
    assert_eq!(p.top, "power10");
    assert_eq!(
        p.lift,
        Some(Lift {
            qemu_cpu: "power10",
            highest: Some("power10"),
            proven: vec!["power8", "power9", "power10"],
        })
    );
    assert_eq!(f.asked().len(), 2);
    assert_eq!(f.asked()[1].env, [("QEMU_CPU".into(), "power10".into())]);

    // The same second run, reaching no higher: no lift is claimed.
    let f = ppc64le(100 + 0b011, Some(100 + 0b011));
    assert_eq!(
        levels(f, "ppc64le", None, true).0.expect("proven").lift,
        None
    );
    // Or not running at all.
    let f = ppc64le(100 + 0b011, None);
    assert_eq!(
        levels(f, "ppc64le", None, true).0.expect("proven").lift,
        None
    );
}

/// One start per architecture when the default already reaches all it can: amd64 under
/// QEMU 7.2 stops at v3, and no QEMU_CPU value reaches v4; arm reaches its top.
#[test]
fn no_second_run_without_a_value_to_try() {
    let f = Fake::new().reply("amd64", AskProgram::Levels, None, &[], exited(100 + 0b011));
    let (p, f) = levels(f, "amd64", None, true);
    let p = p.expect("proven");
    assert_eq!(p.highest, Some("x86-64-v3"));
    assert_eq!(p.lift, None);
    assert_eq!(f.asked().len(), 1);
    assert!(
        f.asked()[0].env.is_empty(),
        "the default run sets no QEMU_CPU"
    );

    let f = Fake::new().reply("arm", AskProgram::Levels, None, &[], exited(100 + 0b1111));
    let (p, f) = levels(f, "arm", None, true);
    assert_eq!(p.expect("proven").highest, Some("v8"));
    assert_eq!(f.asked().len(), 1);
}

/// The host's own CPU is not an emulator: QEMU_CPU means nothing to it.
#[test]
fn the_host_cpu_gets_no_qemu_cpu_run() {
    let f = ppc64le(100 + 0b011, None);
    let (p, f) = levels(f, "ppc64le", None, false);
    assert_eq!(p.expect("proven").lift, None);
    assert_eq!(f.asked().len(), 1);
}

#[test]
fn what_did_not_run_proves_nothing() {
    // No reply: it never ran. An exit status the probe never gives. No probe for mips.
    assert_eq!(levels(Fake::new(), "amd64", None, true).0, None);
    let f = Fake::new().reply("amd64", AskProgram::Levels, None, &[], exited(42));
    assert_eq!(levels(f, "amd64", None, true).0, None);
    let (p, f) = levels(Fake::new(), "mips", None, true);
    assert_eq!(p, None);
    assert!(f.asked().is_empty());
}

/// A handler under an extension rule is asked with a file of that extension.
#[test]
fn the_extension_goes_on_the_file_name() {
    let f = Fake::new().reply(
        "amd64",
        AskProgram::Levels,
        Some("probe-ext"),
        &[],
        exited(100 + 0b011),
    );
    let (p, f) = levels(f, "amd64", Some("probe-ext"), true);
    assert_eq!(p.expect("proven").highest, Some("x86-64-v3"));
    assert_eq!(f.asked()[0].extension.as_deref(), Some("probe-ext"));
}

#[test]
fn platforms_follow_the_proven_levels() {
    let f = Fake::new().reply("amd64", AskProgram::Levels, None, &[], exited(100 + 0b111));
    let p = levels(f, "amd64", None, false).0.expect("proven");
    assert_eq!(
        platforms(arch("amd64"), &p),
        [
            "linux/amd64",
            "linux/amd64/v2",
            "linux/amd64/v3",
            "linux/amd64/v4"
        ]
    );
    let f = Fake::new().reply("arm", AskProgram::Levels, None, &[], exited(100 + 0b1111));
    let p = levels(f, "arm", None, true).0.expect("proven");
    assert_eq!(
        platforms(arch("arm"), &p),
        [
            "linux/arm/v7",
            "linux/arm/v6",
            "linux/arm/v5",
            "linux/arm/v8"
        ]
    );
    // ARMv6 only (an arm1136): no v7 claimed.
    let f = Fake::new().reply("arm", AskProgram::Levels, None, &[], exited(100 + 0b0011));
    let p = levels(f, "arm", None, true).0.expect("proven");
    assert_eq!(platforms(arch("arm"), &p), ["linux/arm/v6", "linux/arm/v5"]);
    let f = Fake::new().reply(
        "arm64",
        AskProgram::Levels,
        None,
        &[],
        exited(100 + 0b111_1101),
    );
    let p = levels(f, "arm64", None, true).0.expect("proven");
    assert_eq!(p.highest, Some("v8.1"));
    assert_eq!(p.checks, ["v8.1", "v8.3", "v8.4", "v8.5", "sve", "sve2"]);
    assert_eq!(
        platforms(arch("arm64"), &p),
        ["linux/arm64", "linux/arm64/v8.1"]
    );
    // No variants for s390x; and none proven at all still leaves the bare platform.
    let f = Fake::new().reply("s390x", AskProgram::Levels, None, &[], exited(100));
    let p = levels(f, "s390x", None, true).0.expect("proven");
    assert_eq!(p.highest, None);
    assert_eq!(platforms(arch("s390x"), &p), ["linux/s390x"]);
}
