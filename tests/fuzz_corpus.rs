//! Replays the committed fuzzing corpora (`fuzz/corpus/<target>/`) through the same harness
//! functions the cargo-fuzz targets call, on stable Rust: every input the fuzzer found
//! interesting, and every input that once found a bug, stays a regression test of
//! `cargo test` without nightly or cargo-fuzz. docs/testing.md describes the fuzzing itself.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::path::{Path, PathBuf};

/// Every file of one target's corpus, in a stable order.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `harness` on every corpus file of `target`, naming the file that fails.
fn replay(target: &str, harness: fn(&[u8])) {
    let files = corpus(target);
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
