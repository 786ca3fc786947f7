//! `cargo +nightly fuzz run api_json`: see [`convene::fuzzing::api_json`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convene::fuzzing::api_json(data));
