//! Tests: hostile inputs against every reader. Each must end in an error that names the
//! file (and the line and column where the input went over a bound), never a panic, a
//! stack overflow or unbounded memory.

use std::path::Path;

use super::limits::{MAX_DEPTH, MAX_FILE_BYTES};
use super::*;

type Reader = fn(&Path, &str) -> Result<(), SpecError>;

/// Every file format tug reads, by the reader a user's file goes through.
const READERS: &[(&str, Reader)] = &[
    ("job kind", |p, t| job_file_kind(p, t).map(drop)),
    ("command job", |p, t| parse_command_job(p, t, &[]).map(drop)),
    ("command job with --set", |p, t| {
        parse_command_job(p, t, &[("inputs.x", "1")]).map(drop)
    }),
    ("sweep job", |p, t| parse_sweep_job(p, t, &[]).map(drop)),
    ("environment", |p, t| parse_environment(p, t, &[]).map(drop)),
    ("conda", |p, t| conda_pip_plan(p, t).map(drop)),
    ("model", |p, t| parse_model(p, t, &[]).map(drop)),
    ("endpoint", |p, t| {
        parse_online_endpoint(p, t, &[]).map(drop)
    }),
    ("deployment", |p, t| {
        parse_online_deployment(p, t, &[]).map(drop)
    }),
];

fn hostile() -> Vec<(&'static str, String)> {
    let mut block_map = String::new();
    for i in 0..(MAX_DEPTH * 3) {
        block_map.push_str(&" ".repeat(i));
        block_map.push_str("k:\n");
    }
    let mut bomb = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    vec![
        ("a megabyte of [", "[".repeat(MAX_FILE_BYTES as usize)),
        (
            "deep flow under a key",
            format!("command: {}\n", "[".repeat(100_000)),
        ),
        (
            "deep flow mappings",
            format!("a: {}\n", "{a: ".repeat(10_000)),
        ),
        ("deep block mappings", block_map),
        (
            "half a million dashes",
            format!("{}x\n", "- ".repeat(500_000)),
        ),
        ("billion laughs", bomb),
        (
            "a file past the size limit",
            format!("command: \"{}\"\n", "x".repeat(MAX_FILE_BYTES as usize)),
        ),
    ]
}

#[test]
fn every_reader_refuses_hostile_input_with_a_located_error() {
    let path = Path::new("hostile.yml");
    for (what, text) in hostile() {
        for (reader, read) in READERS {
            let err = read(path, &text).expect_err(&format!("{reader} accepted {what}"));
            let shown = err.to_string();
            assert!(
                shown.starts_with("hostile.yml"),
                "{reader}, {what}: {shown}"
            );
            if what != "a file past the size limit" {
                assert!(
                    err.location().is_some(),
                    "{reader}, {what}: not located: {shown}"
                );
            }
        }
        let config = crate::compute::config::WorkspaceConfig::parse("config.yml", &text);
        assert!(config.is_err(), "config accepted {what}");
    }
}

#[test]
fn nesting_at_the_limit_still_reads() {
    // `inputs.x.default` holds a list nested to just under the bound: a valid file.
    let nested = format!(
        "{}1{}",
        "[".repeat(MAX_DEPTH - 4),
        "]".repeat(MAX_DEPTH - 4)
    );
    let text =
        format!("command: echo\nenvironment:\n  image: python:3.11\ntags:\n  deep: \"{nested}\"\n");
    parse_command_job(Path::new("ok.yml"), &text, &[]).unwrap();
}
