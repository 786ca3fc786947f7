//! `cargo +nightly fuzz run sdp`: see [`convene_media::fuzzing::sdp`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convene_media::fuzzing::sdp(data));
