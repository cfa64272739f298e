//! The `converge` binary on hostile scenario files: huge, deeply nested, not text, with overlong
//! lines or terminal escapes, and asking for absurd sizes. Each is refused with exit status 2 and
//! a short error whose first line names the file and the problem; none panics or hangs.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common;
use common::{converge, scratch};

/// Any of these files is refused well within this time (a debug build parses 8 MiB in about two
/// seconds; the cap refuses a larger file before parsing it).
const REFUSAL_TIME_MAX: Duration = Duration::from_secs(20);

/// Runs `converge run` on a file holding `contents` and checks the refusal: exit status 2, no
/// report written, a first line naming the file and containing every one of `expected`, and at
/// most a quoted line with its caret after it, each line short.
fn refused(dir: &Path, name: &str, contents: &[u8], expected: &[&str]) {
    std::fs::write(dir.join(name), contents).unwrap();
    let started = Instant::now();
    let output = converge(dir, &["run", name, "--out", "out"]);
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
    assert!(elapsed < REFUSAL_TIME_MAX, "{name} took {elapsed:?}");
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let first = lines.first().copied().unwrap_or_default();
    assert!(
        first.starts_with(&format!("error: {name}")),
        "the first line names the file: {stderr}"
    );
    for needle in expected {
        assert!(
            first.contains(needle),
            "{name}: expected {needle:?} in {first:?}"
        );
    }
    assert!(
        lines.len() <= 4,
        "{name}: one error line and a quote: {stderr}"
    );
    for line in &lines {
        assert!(
            line.chars().count() <= 400,
            "{name}: an overlong line: {line}"
        );
        assert!(
            !line.contains('\u{1b}'),
            "{name}: a terminal escape: {line:?}"
        );
    }
    assert!(
        !dir.join("out").exists(),
        "{name}: nothing is written for a refused file"
    );
}

#[test]
fn hostile_files_are_refused_with_one_clear_error() {
    let dir = scratch("files");
    let deep = 100_000;
    refused(
        &dir,
        "huge.toml",
        "# filler\n".repeat(1024 * 1024).as_bytes(),
        &["larger than 8 MiB", "SCENARIO_FILE_BYTES_MAX"],
    );
    refused(
        &dir,
        "deep-arrays.toml",
        format!("name = {}{}\n", "[".repeat(deep), "]".repeat(deep)).as_bytes(),
        &[
            "deep-arrays.toml:1:",
            "nested more than 64",
            "NESTING_DEPTH_MAX",
        ],
    );
    refused(
        &dir,
        "deep-tables.toml",
        format!("name = {}1{}\n", "{a=".repeat(deep), "}".repeat(deep)).as_bytes(),
        &["nested more than 64"],
    );
    refused(
        &dir,
        "deep-keys.toml",
        format!("{} = 1\n", vec!["a"; deep].join(".")).as_bytes(),
        &["nested deeper than the parser accepts"],
    );
    refused(
        &dir,
        "deep-header.toml",
        format!("[{}]\n", vec!["a"; deep].join(".")).as_bytes(),
        &["nested deeper than the parser accepts"],
    );
    refused(
        &dir,
        "deep.json",
        format!("{{\"name\": {}{}}}", "[".repeat(deep), "]".repeat(deep)).as_bytes(),
        &["deep.json:1:", "nested more than 64"],
    );
    refused(
        &dir,
        "binary.toml",
        b"name = \"x\"\n\xff\xfe\x00\x01garbage\n",
        &["binary.toml:2:1", "not UTF-8 text"],
    );
    refused(
        &dir,
        "long-line.toml",
        format!("replicas = \"{}\"\n", "b".repeat(5_000_000)).as_bytes(),
        &["key `replicas`", "characters left out", "expected u32"],
    );
    refused(
        &dir,
        "escapes.toml",
        b"name = \"x\"\nreplicas = \"\x1b[2J\x1b[31mred\"\n",
        &["escapes.toml:2:", "key `replicas`"],
    );
    refused(
        &dir,
        "replicas.toml",
        b"replicas = 4000000000\n",
        &["key `replicas`", "REPLICAS_MAX"],
    );
    refused(
        &dir,
        "negative.toml",
        b"replicas = -3\n",
        &["key `replicas`", "expected u32"],
    );
    refused(
        &dir,
        "rate.toml",
        b"[workload]\nrate = 1e9\n",
        &["key `workload.rate`", "RATE_MAX"],
    );
    refused(
        &dir,
        "nan.toml",
        b"[network]\ndrop = nan\n",
        &["key `network.drop`", "probability"],
    );
    refused(
        &dir,
        "years.toml",
        b"duration = \"100000000h\"\n",
        &["key `duration`", "VIRTUAL_TIME_MAX"],
    );
    refused(
        &dir,
        "timeout.toml",
        b"[protocol]\nkind = \"reliable-causal\"\nretransmit-timeout = \"1000000000h\"\n",
        &["key `protocol.retransmit-timeout`", "VIRTUAL_TIME_MAX"],
    );
    refused(
        &dir,
        "grid.toml",
        b"[crdt]\nkind = \"lww-grid\"\nrows = 100000\ncols = 100000\n",
        &["key `crdt`", "GRID_CELLS_MAX"],
    );
    refused(
        &dir,
        "workload.toml",
        b"replicas = 10000\n[workload]\nrate = 1000.0\n",
        &["key `replicas`", "REPLICA_UPDATES_MAX"],
    );
    let mut links = String::new();
    for _ in 0..5_000 {
        links.push_str("[[network.links]]\nfrom = 0\ndrop = 0.5\n");
    }
    refused(
        &dir,
        "links.toml",
        links.as_bytes(),
        &["key `network.links`", "LINKS_MAX"],
    );
    let mut faults = String::new();
    for _ in 0..1_001 {
        faults.push_str("[[faults]]\nkind = \"leave\"\nat = \"1s\"\nreplica = 1\n");
    }
    refused(
        &dir,
        "faults.toml",
        faults.as_bytes(),
        &["key `faults`", "FAULTS_MAX"],
    );
    refused(
        &dir,
        "name.toml",
        format!("name = \"{}\"\n", "n".repeat(1_000)).as_bytes(),
        &["key `name`", "NAME_CHARS_MAX"],
    );
}

#[cfg(unix)]
#[test]
fn a_device_or_pipe_is_not_read_forever() {
    let dir = scratch("device");
    let started = Instant::now();
    let output = converge(&dir, &["run", "/dev/zero", "--out", "out"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("/dev/zero: a device, not a regular file"),
        "{stderr}"
    );
    assert!(started.elapsed() < REFUSAL_TIME_MAX);
}

#[test]
fn absurd_sweep_arguments_are_refused() {
    let dir = scratch("sweep-args");
    std::fs::write(dir.join("small.toml"), "replicas = 2\nduration = \"1s\"\n").unwrap();
    for (args, expected) in [
        (
            &["sweep", "small.toml", "--seeds", "0..18446744073709551615"][..],
            "SWEEP_SEEDS_MAX",
        ),
        (
            &[
                "sweep",
                "small.toml",
                "--seeds",
                "0..18446744073709551615",
                "--shard",
                "1/1000000",
            ],
            "SWEEP_SEEDS_MAX",
        ),
        (
            &[
                "sweep",
                "small.toml",
                "--seeds",
                "0..10",
                "--jobs",
                "1000000",
            ],
            "JOBS_MAX",
        ),
    ] {
        let started = Instant::now();
        let output = converge(&dir, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(started.elapsed() < REFUSAL_TIME_MAX, "{args:?}");
    }
}
