//! The cargo-fuzz corpora as regression tests on stable Rust (issue 10, "Fuzzing").
//!
//! Every file of `fuzz/corpus/<target>/` (and of `fuzz/artifacts/<target>/`, where a crash
//! found locally waits to be fixed) goes through the entry point its target runs under
//! cargo-fuzz. Any panic fails the test, naming the file; crashes that were fixed stay in the
//! corpus so they keep being replayed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// An entry point: arbitrary bytes in, nothing out, never a panic.
type EntryPoint = fn(&[u8]);

/// Each cargo-fuzz target and the entry point it runs (see `fuzz/fuzz_targets/`).
const TARGETS: &[(&str, EntryPoint)] = &[
    ("blt", convene_governance::fuzzing::blt),
    ("signaling", convene_media::fuzzing::signaling),
    ("sdp", convene_media::fuzzing::sdp),
    ("sdp_parse", convene_media::fuzzing::sdp_parse),
    ("form", convene::fuzzing::form),
    ("api_json", convene::fuzzing::api_json),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fuzz")
}

/// The files of `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Replays `target`'s corpus and artifacts through its entry point; fails naming every file
/// that panics.
fn replay(target: &str) {
    let (_, entry) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a target listed in TARGETS");
    let fuzz = fuzz_dir();
    let corpus = files(&fuzz.join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target} holds the target's seeds and must not be empty"
    );
    let artifacts = files(&fuzz.join("artifacts").join(target));
    let mut panicked = Vec::new();
    for file in corpus.iter().chain(&artifacts) {
        let data = std::fs::read(file).expect("read a corpus file");
        if catch_unwind(AssertUnwindSafe(|| entry(&data))).is_err() {
            panicked.push(file.display().to_string());
        }
    }
    assert!(panicked.is_empty(), "inputs that panic: {panicked:#?}");
}

// One test per target, so that they replay in parallel and a failure names its target.

#[test]
fn blt_corpus_replays() {
    replay("blt");
}

#[test]
fn signaling_corpus_replays() {
    replay("signaling");
}

#[test]
fn sdp_corpus_replays() {
    replay("sdp");
}

#[test]
fn sdp_parse_corpus_replays() {
    replay("sdp_parse");
}

#[test]
fn form_corpus_replays() {
    replay("form");
}

#[test]
fn api_json_corpus_replays() {
    replay("api_json");
}

#[test]
fn every_corpus_folder_belongs_to_a_target() {
    let corpus = fuzz_dir().join("corpus");
    let folders = std::fs::read_dir(&corpus).expect("fuzz/corpus exists");
    for folder in folders {
        let name = folder.expect("read fuzz/corpus").file_name();
        let name = name.to_string_lossy();
        assert!(
            TARGETS.iter().any(|(target, _)| *target == name),
            "fuzz/corpus/{name} has no entry point in TARGETS, so it would never be replayed"
        );
    }
}
