use super::*;

#[test]
fn versions_parse_and_order() {
    let v = |s| Version::parse(s).unwrap_or_else(|| panic!("{s}"));
    assert_eq!(v("7.2.22").to_string(), "7.2.22");
    assert_eq!(v("7.2"), v("7.2.0"));
    assert_eq!(v("8.0.50-rc1").to_string(), "8.0.50");
    assert!(v("7.2.22") < v("7.10.0"));
    assert!(v("9.2.1") < v("9.2.2") && v("9.2.2") < v("10.0.0"));
    for bad in [
        "",
        "7",
        "seven",
        "7.x",
        "7..2",
        "7.2.2.2",
        ".7.2",
        "99999999999.1",
    ] {
        assert_eq!(Version::parse(bad), None, "{bad:?}");
    }
}

/// The banner as Debian's qemu-user-static 7.2 prints it, measured.
#[test]
fn banners_are_read() {
    let debian = "qemu-aarch64 version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n\
                  Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n";
    let b = parse_banner(debian).expect("banner");
    assert_eq!(b.version.to_string(), "7.2.22");
    assert_eq!(
        b.package.as_deref(),
        Some("Debian 1:7.2+dfsg-7+deb12u18+b3")
    );
    let plain = parse_banner("qemu-x86_64 version 9.2.2\nCopyright\n").expect("plain");
    assert_eq!(
        (plain.version.to_string(), plain.package),
        ("9.2.2".into(), None)
    );
    // What a probe run by another interpreter prints, and other non-banners.
    for other in [
        "token-amd64-1\nbinfmt-setup-probe\n",
        "",
        "box64 version 0.3.0\n",
        "qemu x version 1.2\n",
        "qemu-arm version seven\n",
    ] {
        assert_eq!(parse_banner(other), None, "{other:?}");
    }
}

#[test]
fn defaults_are_known_for_7_2_only() {
    let v = |s| Version::parse(s).expect("version");
    assert_eq!(default_cpu("amd64", v("7.2.22")), Some("max"));
    assert_eq!(default_cpu("ppc64le", v("7.2.0")), Some("POWER9"));
    assert_eq!(default_cpu("amd64", v("8.2.2")), None);
    assert_eq!(default_cpu("mips", v("7.2.22")), None);
}

/// Each default named for QEMU 7.2 behaves as that model does: the family's level probe,
/// run directly under Debian's QEMU, proves the same checks with `-cpu NAME` as without.
#[test]
fn defaults_behave_like_their_model() {
    use crate::probe::levels::{FAMILIES, testing};
    let v = Version::parse("7.2.22").expect("version");
    for f in FAMILIES {
        let arch = testing::arch(f.arch);
        let name = default_cpu(f.arch, v).unwrap_or_else(|| panic!("{}: no default", f.arch));
        let default = testing::exit_under_qemu(&arch, None);
        let named = testing::exit_under_qemu(&arch, Some(name));
        assert!(default.is_some(), "{}: the probe did not run", f.arch);
        assert_eq!(default, named, "{}: default and -cpu {name}", f.arch);
    }
}

/// Every emulator of Debian's qemu-user-static answers `QEMU_VERSION=1` with a banner naming
/// its target as the table does (`qemu-<cpu>`), whatever the file is called, and exits 0:
/// what `ask` relies on to tell a handler's own QEMU from an outer one.
#[test]
fn every_debian_emulator_names_its_target_in_its_banner() {
    use crate::sys::exec::{self, Ending, Env, Spec};
    let table = crate::arch::ArchTable::embedded();
    let mut asked = 0;
    for a in table.iter() {
        let Some(cpu) = a.qemu.as_deref() else {
            continue;
        };
        let qemu = format!("/usr/bin/qemu-{cpu}-static");
        if !std::path::Path::new(&qemu).exists() {
            continue;
        }
        let out = exec::run(
            &Spec::new(&qemu)
                .argv([qemu.as_str(), "/nonexistent"])
                .env(Env::Exactly(vec!["QEMU_VERSION=1".into()])),
            Some(std::time::Duration::from_secs(30)),
        )
        .unwrap_or_else(|e| panic!("{qemu}: {e}"));
        assert_eq!(out.ending, Ending::Exited(0), "{qemu}");
        let banner = parse_banner(&String::from_utf8_lossy(&out.stdout))
            .unwrap_or_else(|| panic!("{qemu}: no banner"));
        assert_eq!(Some(banner.program), a.entry_name(), "{qemu}");
        assert_eq!(banner.version.major, 7, "{qemu}");
        asked += 1;
    }
    assert!(
        asked >= 30,
        "only {asked} emulators found: is qemu-user-static installed?"
    );
}
