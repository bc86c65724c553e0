//! Integration tests: the real binary, real fixtures, real kernel (private binfmt_misc
//! instances only; the host's is read, never written).

mod configs;
mod diagnose;
mod docs;
mod export;
mod fleet_util;
mod harden;
mod hostile;
mod image;
mod init;
mod inspect;
mod install;
mod isolation;
mod kernel;
mod layout;
mod mutate;
mod probe;
mod run;
mod scan;
mod util;
