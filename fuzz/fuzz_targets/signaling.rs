//! `cargo +nightly fuzz run signaling`: see [`convene_media::fuzzing::signaling`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convene_media::fuzzing::signaling(data));
