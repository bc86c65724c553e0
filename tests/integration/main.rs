//! Integration tests: the real binary, real fixtures, real kernel (private binfmt_misc
//! instances only; the host's is read, never written).

mod inspect;
mod install;
mod isolation;
mod mutate;
mod scan;
mod util;
