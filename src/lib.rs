//! binfmt-setup: name the platform of executables, register QEMU user-mode interpreters in
//! binfmt_misc, and prove they work. The binary (`src/main.rs`) is a thin shell over this
//! library; nothing here prints or exits.

pub mod arch;
pub mod binfmt;
pub mod cli;
pub mod commands;
pub mod config;
pub mod diagnose;
pub mod elf;
pub mod emulator;
pub mod error;
pub mod export;
pub mod fileio;
pub mod format;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod inspect;
pub mod machine;
pub mod messages;
pub mod names;
pub mod needs;
pub mod probe;
pub mod qemu;
pub mod rootless;
pub mod rule;
pub mod scan;
pub mod status;
pub mod supervise;
pub mod sys;
