//! Fuzz target `oci_json`: see binfmt_setup::fuzzing::oci_json.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    binfmt_setup::fuzzing::oci_json(data);
});
