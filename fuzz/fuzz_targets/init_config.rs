//! Fuzz target `init_config`: see binfmt_setup::fuzzing::init_config.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    binfmt_setup::fuzzing::init_config(data);
});
