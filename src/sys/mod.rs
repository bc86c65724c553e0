//! The operating system, where this program touches it most directly: starting other
//! programs (`exec`, the only code that forks or execs), the PATH rule (`path`), the
//! namespace system calls behind a private binfmt_misc (`ns`), and signals read as data
//! (`signals`).

pub mod exec;
pub mod ns;
pub mod path;
pub mod signals;
