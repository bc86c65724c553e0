//! Fuzz target `inspect`: see binfmt_setup::fuzzing::inspect_bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    binfmt_setup::fuzzing::inspect_bytes(data);
});
