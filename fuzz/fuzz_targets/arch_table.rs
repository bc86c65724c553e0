//! Fuzz target `arch_table`: see binfmt_setup::fuzzing::arch_table.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    binfmt_setup::fuzzing::arch_table(data);
});
