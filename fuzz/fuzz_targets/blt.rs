//! `cargo +nightly fuzz run blt`: see [`convene_governance::fuzzing::blt`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convene_governance::fuzzing::blt(data));
