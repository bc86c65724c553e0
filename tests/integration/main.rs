//! Integration tests: the real binary, real fixtures, real kernel (private binfmt_misc
//! instances only; the host's is read, never written).

mod after_exec;
mod arm64_host;
mod builders;
mod configs;
mod credential;
mod daemon;
mod diagnose;
mod docker;
mod dockerd;
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
mod levels;
mod mutate;
mod needs;
mod preflight;
mod probe;
mod registry;
mod run;
mod scan;
mod util;
