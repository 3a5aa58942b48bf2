//! Replays the fuzzers' corpus (`tests/fuzz/corpus/<target>/`) and every input that once
//! crashed a target (`tests/fuzz/regressions/<target>/`) through the same entry points the
//! fuzz targets call (`tug::fuzzing`), so CI checks what the fuzzers found without running
//! them. A new crash goes into `regressions/<target>/` under a name that says what it was.

use std::path::Path;

fn replay(dir: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(dir);
    let mut count = 0;
    for (name, entry) in tug::fuzzing::TARGETS {
        let Ok(files) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        let mut files: Vec<_> = files.map(|f| f.unwrap().path()).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).unwrap();
            // A panic here names the input that caused it.
            eprintln!("{name}: {}", file.display());
            entry(&data);
            count += 1;
        }
    }
    count
}

#[test]
fn every_target_has_a_seed_corpus_and_survives_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    for (name, _) in tug::fuzzing::TARGETS {
        assert!(
            root.join("fuzz_targets")
                .join(format!("{name}.rs"))
                .is_file(),
            "no fuzz target file for {name}"
        );
        let seeds = std::fs::read_dir(root.join("corpus").join(name))
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(seeds > 0, "no seed corpus for {name}");
    }
    assert!(replay("corpus") >= tug::fuzzing::TARGETS.len());
}

#[test]
fn inputs_that_once_crashed_a_target_no_longer_do() {
    replay("regressions");
}
