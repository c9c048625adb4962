//! Replays the committed fuzzing inputs through the same harness functions the cargo-fuzz
//! targets call, on stable Rust: the minimized corpus (`fuzz/corpus/<target>/`, every input the
//! fuzzer found interesting) and the regressions (`fuzz/regressions/<target>/`, each input that
//! once found a bug, kept by name because `cargo fuzz cmin` may drop it from the corpus). So
//! they stay regression tests of `cargo test` without nightly or cargo-fuzz. docs/testing.md
//! describes the fuzzing itself.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::{Path, PathBuf};

/// Every file of one target's corpus and regressions, in a stable order.
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in [fuzz.join("corpus").join(target), fuzz.join("regressions").join(target)] {
        // Only some targets have regressions.
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        files.extend(entries.map(|entry| entry.unwrap().path()).filter(|path| path.is_file()));
    }
    files.sort();
    files
}

/// Runs `harness` on every input of `target`, naming the file that fails.
fn replay(target: &str, harness: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "the {target} corpus is empty");
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let outcome = std::panic::catch_unwind(|| harness(&data));
        assert!(outcome.is_ok(), "{} fails the {target} harness", file.display());
    }
}

#[test]
fn the_request_head_corpus_passes() {
    replay("request_head", ringproxy::fuzz::request_head);
}

#[test]
fn the_response_head_corpus_passes() {
    replay("response_head", ringproxy::fuzz::response_head);
}

#[test]
fn the_chunked_body_corpus_passes() {
    replay("chunked_body", ringproxy::fuzz::chunked_body);
}

#[test]
fn the_caddyfile_corpus_passes() {
    replay("caddyfile", ringproxy::fuzz::caddyfile);
}

#[test]
fn the_proxy_header_corpus_passes() {
    replay("proxy_header", ringproxy::fuzz::proxy_header);
}

#[test]
fn the_ws_frames_corpus_passes() {
    replay("ws_frames", ringproxy::fuzz::ws_frames);
}
