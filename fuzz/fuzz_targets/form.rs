//! `cargo +nightly fuzz run form`: see [`convene::fuzzing::form`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convene::fuzzing::form(data));
