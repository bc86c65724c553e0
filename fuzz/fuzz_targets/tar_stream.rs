//! Fuzz target `tar_stream`: see binfmt_setup::fuzzing::tar_stream.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    binfmt_setup::fuzzing::tar_stream(data);
});
