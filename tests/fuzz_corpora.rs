//! Replays every committed fuzz corpus (fuzz/corpus/<target>/) through the
//! same entry function the fuzzer runs (`mesero::fuzzing::<target>`), so
//! plain `cargo test` re-checks every input the fuzzer kept, on stable
//! Rust without a fuzzer runtime (docs/FUZZING.md).
//!
//! Also checks that the fuzz project and the library agree on the list of
//! targets, so a target added halfway fails here with what is missing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn names_in(dir: &Path, suffix: &str) -> BTreeSet<String> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    entries
        .map(|e| e.expect("directory entry").file_name())
        .filter_map(|n| {
            n.to_str()
                .and_then(|n| n.strip_suffix(suffix))
                .map(String::from)
        })
        .collect()
}

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (every target keeps a seed corpus)", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_is_registered_everywhere() {
    let registered: BTreeSet<String> = mesero::fuzzing::TARGETS
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    let sources = names_in(&fuzz_dir().join("fuzz_targets"), ".rs");
    let corpora = names_in(&fuzz_dir().join("corpus"), "");
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let bins: BTreeSet<String> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "mesero-fuzz")
        .map(String::from)
        .collect();
    assert_eq!(
        sources, registered,
        "fuzz/fuzz_targets/*.rs vs mesero::fuzzing::TARGETS"
    );
    assert_eq!(bins, registered, "[[bin]] in fuzz/Cargo.toml vs TARGETS");
    assert_eq!(corpora, registered, "fuzz/corpus/* vs TARGETS");
}

#[test]
fn every_committed_corpus_input_passes() {
    let mut total = 0;
    let mut failed = Vec::new();
    for (name, run) in mesero::fuzzing::TARGETS {
        let files = corpus_files(name);
        assert!(!files.is_empty(), "fuzz/corpus/{name} is empty");
        for file in files {
            let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                failed.push(file.display().to_string());
            }
            total += 1;
        }
    }
    // Reproduce one with `cargo fuzz run <target> <file>` in fuzz/, or
    // read its panic message above (docs/FUZZING.md).
    assert!(
        failed.is_empty(),
        "{} of {total} corpus inputs failed: {failed:#?}",
        failed.len()
    );
}
