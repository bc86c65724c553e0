//! Fuzz target `registration`: see binfmt_setup::fuzzing::registration.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    binfmt_setup::fuzzing::registration(data);
});
