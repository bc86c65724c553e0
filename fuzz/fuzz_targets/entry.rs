//! Fuzz target `entry`: see binfmt_setup::fuzzing::entry_file.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    binfmt_setup::fuzzing::entry_file(data);
});
