//! Echo-probe machine code for this family (not written yet).

use crate::arch::Arch;
use crate::probe::Code;

pub(super) fn code(_arch: &Arch) -> Option<Code> {
    None
}
