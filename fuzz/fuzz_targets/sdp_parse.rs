//! `cargo +nightly fuzz run sdp_parse`: see [`convene_media::fuzzing::sdp_parse`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convene_media::fuzzing::sdp_parse(data));
