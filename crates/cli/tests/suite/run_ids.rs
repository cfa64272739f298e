//! Run ids: every report names its run, rerunning the same run rewrites its own report, and a
//! different run's report is moved to `previous/<its run id>/` instead of being overwritten.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::common;
use common::scratch;

/// Runs the binary and expects success.
fn converge(dir: &Path, args: &[&str]) -> Output {
    let output = common::converge(dir, args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const SCENARIO: &str = "name = \"small\"\nreplicas = 3\nduration = \"2s\"\nsettle = \"2s\"\n";

#[test]
fn a_new_run_never_overwrites_a_different_runs_report() {
    let dir = scratch("runs");
    std::fs::write(dir.join("small.toml"), SCENARIO).unwrap();
    let report = dir.join("out/small-seed1.json");

    converge(&dir, &["run", "small.toml", "--seed", "1", "--out", "out"]);
    let first = json(&report);
    let first_id = first["run_id"].as_str().unwrap().to_string();
    assert_eq!(first_id.len(), 16);
    assert_eq!(first["partial"], false);
    let page = std::fs::read_to_string(dir.join("out/small-seed1.html")).unwrap();
    assert!(page.contains(&first_id), "the page shows the run id");

    // The same run again: its own report is rewritten, nothing is kept aside.
    let again = converge(&dir, &["run", "small.toml", "--seed", "1", "--out", "out"]);
    assert!(!String::from_utf8_lossy(&again.stderr).contains("note:"));
    assert_eq!(json(&report)["run_id"], first_id.as_str());
    assert!(!dir.join("out/previous").exists());

    // A comment does not make another run; a changed scenario with the same name does.
    std::fs::write(dir.join("small.toml"), format!("# a comment\n{SCENARIO}")).unwrap();
    let commented = converge(&dir, &["run", "small.toml", "--seed", "1", "--out", "out"]);
    assert!(!String::from_utf8_lossy(&commented.stderr).contains("note:"));
    std::fs::write(
        dir.join("small.toml"),
        SCENARIO.replace("replicas = 3", "replicas = 4"),
    )
    .unwrap();
    let changed = converge(&dir, &["run", "small.toml", "--seed", "1", "--out", "out"]);
    let stderr = String::from_utf8_lossy(&changed.stderr);
    let kept = dir.join("out/previous").join(&first_id);
    assert!(
        stderr.contains(&format!("held the report of another run ({first_id})")),
        "{stderr}"
    );
    assert!(stderr.contains(&kept.display().to_string()) || stderr.contains("previous"));
    assert_eq!(
        json(&kept.join("small-seed1.json"))["run_id"],
        first_id.as_str()
    );
    for companion in [
        "small-seed1.html",
        "small-seed1.trace.json",
        "small-seed1.shiviz.log",
    ] {
        assert!(
            kept.join(companion).is_file(),
            "{companion} moves with its report"
        );
    }
    let second_id = json(&report)["run_id"].as_str().unwrap().to_string();
    assert_ne!(second_id, first_id);

    // A report without a run id (an older version's, or anything else) is kept too.
    std::fs::write(
        dir.join("out/small-seed2.json"),
        "{\"scenario\": \"small\"}",
    )
    .unwrap();
    let over = converge(&dir, &["run", "small.toml", "--seed", "2", "--out", "out"]);
    assert!(String::from_utf8_lossy(&over.stderr).contains("a report without a run id"));
    assert!(dir
        .join("out/previous/without-run-id/small-seed2.json")
        .is_file());
}

#[test]
fn sweeps_and_merges_carry_run_ids() {
    let dir = scratch("sweeps");
    std::fs::write(dir.join("small.toml"), SCENARIO).unwrap();
    converge(
        &dir,
        &["sweep", "small.toml", "--seeds", "0..4", "--out", "out"],
    );
    let result = json(&dir.join("out/small-sweep-0-4.json"));
    let id = result["run_id"].as_str().unwrap().to_string();
    assert_eq!(result["partial"], false);
    assert_eq!(result["seeds_planned"], 4);
    for run in result["runs"].as_array().unwrap() {
        assert_eq!(run["run_id"].as_str().unwrap().len(), 16);
    }
    // A run of one seed has the id the sweep gave that seed.
    converge(
        &dir,
        &["run", "small.toml", "--seed", "2", "--out", "single"],
    );
    assert_eq!(
        json(&dir.join("single/small-seed2.json"))["run_id"],
        result["runs"][2]["run_id"]
    );
    let again = converge(
        &dir,
        &["sweep", "small.toml", "--seeds", "0..4", "--out", "out"],
    );
    assert!(!String::from_utf8_lossy(&again.stderr).contains("note:"));
    assert_eq!(
        json(&dir.join("out/small-sweep-0-4.json"))["run_id"],
        id.as_str()
    );
}
