//! End-to-end tests of the `converge` binary: the scenario suite, exit statuses, errors on bad
//! files, `--json`, sweeps (any `--jobs` gives the same result; shards merge to the full sweep),
//! replay, and the report files.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::common;
use common::{converge, scenarios_dir, scratch};

fn text(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", text(output)))
}

/// A small, fast scenario: three replicas, three seconds of writes on a lossy network.
const SMALL: &str = r#"
name = "small"
replicas = 3
duration = "3s"
settle = "3s"

[crdt]
kind = "lww-grid"

[protocol]
kind = "state-broadcast"
anti-entropy = "500ms"

[network]
drop = 0.1
duplicate = 0.1

[workload]
rate = 3.0
keys = 3
"#;

fn write(dir: &Path, name: &str, contents: &str) -> String {
    std::fs::write(dir.join(name), contents).unwrap();
    name.to_string()
}

#[test]
fn every_scenario_meets_its_expectation() {
    let dir = scratch("suite");
    let scenarios = scenarios_dir();
    let output = converge(
        &dir,
        &[
            "suite",
            scenarios.to_str().unwrap(),
            "--no-shrink",
            "--json",
            "--out",
            "out",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let document = json_of(&output);
    let runs = document["runs"].as_array().unwrap();
    let files = std::fs::read_dir(&scenarios).unwrap().count();
    assert_eq!(runs.len(), files, "one run per scenario file");
    for run in runs {
        assert_eq!(run["met_expectation"], true, "{run}");
    }
    assert!(dir.join("out/index.html").is_file());
}

#[test]
fn json_output_has_every_field_of_every_run() {
    let dir = scratch("json");
    let file = write(&dir, "small.toml", SMALL);
    let output = converge(
        &dir,
        &["run", &file, "--seed", "3", "--json", "--out", "out"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let document = json_of(&output);
    let run = &document["runs"][0];
    for field in [
        "scenario",
        "seed",
        "verdict",
        "trace_hash",
        "converged_at_ms",
        "messages",
        "violations",
        "reproduce",
    ] {
        assert!(run.get(field).is_some(), "missing {field}: {run}");
    }
    for counter in ["sent", "delivered", "dropped", "duplicated"] {
        assert!(
            run["messages"][counter].is_u64(),
            "messages.{counter}: {run}"
        );
    }
    assert_eq!(run["seed"], 3);
    assert_eq!(run["scenario"], "small");
    assert_eq!(run["reproduce"], "converge run small.toml --seed 3");
    assert_eq!(run["trace_hash"].as_str().unwrap().len(), 16);
}

#[test]
fn a_missed_expectation_exits_1_and_prints_the_reproduce_command() {
    let dir = scratch("missed");
    let file = write(
        &dir,
        "wrong.toml",
        &format!("{SMALL}\n[expect]\nverdict = \"diverges\"\n"),
    );
    let output = converge(
        &dir,
        &["run", &file, "--seed", "5", "--no-shrink", "--out", "out"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("seed 5"), "{stdout}");
    assert!(
        stdout.contains("reproduce: converge run wrong.toml --seed 5"),
        "{stdout}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let dir = scratch("usage");
    for args in [
        &["run"][..],
        &["frobnicate"],
        &["sweep", "x.toml"],
        &["run", "x.toml", "--seed", "minus one"],
    ] {
        let output = converge(&dir, args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
    }
    let file = write(&dir, "small.toml", SMALL);
    for bad in [
        &["sweep", &file, "--seeds", "9..3"][..],
        &["sweep", &file, "--seeds", "0..4", "--shard", "4/3"],
    ] {
        let output = converge(&dir, bad);
        assert_eq!(output.status.code(), Some(2), "{bad:?}: {}", text(&output));
    }
}

/// Runs a bad file and returns its error message, after checking the exit status.
fn error_of(dir: &Path, name: &str, contents: &str) -> String {
    let file = write(dir, name, contents);
    let output = converge(dir, &["run", &file, "--out", "out"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(stderr.contains(name), "the error names the file: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn bad_files_get_one_clear_error() {
    let dir = scratch("bad");
    let syntax = error_of(
        &dir,
        "syntax.toml",
        "name = \"x\"\nreplicas = 3\n[network\ndrop = 0.1\n",
    );
    assert!(syntax.contains("syntax.toml:3:"), "{syntax}");

    let unterminated = error_of(&dir, "string.toml", "name = \"x\nreplicas = 3\n");
    assert!(
        unterminated.contains("string.toml:1:10: key `name`"),
        "{unterminated}"
    );

    let unknown = error_of(
        &dir,
        "unknown.toml",
        "name = \"x\"\n[network]\ndrop = 0.1\ndrops = 3\n",
    );
    assert!(
        unknown.contains("unknown.toml:4:1: key `network.drops`"),
        "{unknown}"
    );
    assert!(
        unknown.contains("unknown field `drops`, expected one of"),
        "{unknown}"
    );

    let nested = error_of(
        &dir,
        "nested.toml",
        "[crdt]\nkind = \"lww-grid\"\ntie_break = \"random\"\n",
    );
    assert!(
        nested.contains("nested.toml:3:1: key `crdt.tie_break`"),
        "{nested}"
    );
    assert!(
        nested.contains("tie-break"),
        "the message lists the right spelling: {nested}"
    );

    let wrong_type = error_of(&dir, "type.toml", "name = \"x\"\nreplicas = \"three\"\n");
    assert!(
        wrong_type.contains(
            "type.toml:2:12: key `replicas`: invalid type: string \"three\", expected u32"
        ),
        "{wrong_type}"
    );

    let duration = error_of(
        &dir,
        "duration.toml",
        "[[faults]]\nkind = \"crash\"\nreplica = 1\nat = \"1x\"\n",
    );
    assert!(
        duration.contains("duration.toml:4:6: key `faults[0].at`"),
        "{duration}"
    );
    assert!(
        duration.contains("expected a duration with a unit"),
        "{duration}"
    );

    let inline = error_of(
        &dir,
        "inline.toml",
        "[network]\nlatency = { kind = \"uniform\", min = \"1q\", max = \"2ms\" }\n",
    );
    assert!(
        inline.contains("inline.toml:2:37: key `network.latency.min`"),
        "{inline}"
    );

    let out_of_range = error_of(
        &dir,
        "range.toml",
        "replicas = 3\n[[faults]]\nkind = \"join\"\nat = \"1s\"\nreplica = 7\n",
    );
    assert!(out_of_range.contains("range.toml"), "{out_of_range}");
    assert!(out_of_range.contains("invalid scenario"), "{out_of_range}");
    assert!(
        out_of_range.contains("faults"),
        "the message names the key path: {out_of_range}"
    );

    let json = error_of(
        &dir,
        "bad.json",
        "{\"name\": \"x\",\n \"network\": {\"drop\": \"lots\"}}",
    );
    assert!(json.contains("bad.json:2:"), "{json}");
    assert!(json.contains("key `network.drop`"), "{json}");

    let missing = converge(&dir, &["run", "no-such-file.toml"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such-file.toml"));

    let binary = error_of(&dir, "binary.toml", "\u{0}\u{1}\u{2}garbage = [[[\n");
    assert!(binary.contains("binary.toml:1:"), "{binary}");
}

#[test]
fn json_scenarios_are_accepted() {
    let dir = scratch("json-scenario");
    let file = write(
        &dir,
        "small.json",
        r#"{"name": "small-json", "replicas": 3, "duration": "2s", "settle": "3s",
            "protocol": {"kind": "state-broadcast", "anti-entropy": "500ms"}}"#,
    );
    let output = converge(&dir, &["run", &file, "--json", "--out", "out"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(json_of(&output)["runs"][0]["scenario"], "small-json");
}

#[test]
fn sweeps_give_the_same_result_for_any_jobs() {
    let dir = scratch("jobs");
    let file = write(&dir, "small.toml", SMALL);
    let one = converge(
        &dir,
        &[
            "sweep", &file, "--seeds", "0..8", "--jobs", "1", "--json", "--out", "out",
        ],
    );
    let two = converge(
        &dir,
        &[
            "sweep", &file, "--seeds", "0..8", "--jobs", "2", "--json", "--out", "out",
        ],
    );
    let three = converge(
        &dir,
        &[
            "sweep", &file, "--seeds", "0..8", "--jobs", "3", "--json", "--out", "out",
        ],
    );
    assert_eq!(one.status.code(), Some(0), "{}", text(&one));
    assert_eq!(two.status.code(), Some(0), "{}", text(&two));
    assert_eq!(three.status.code(), Some(0), "{}", text(&three));
    assert_eq!(json_of(&one), json_of(&two));
    assert_eq!(json_of(&one), json_of(&three));
    let hashes = trace_hashes(&json_of(&one));
    assert_eq!(
        hashes.iter().map(|(seed, _)| *seed).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    assert_eq!(hashes, trace_hashes(&json_of(&two)), "--jobs 2");
    assert_eq!(hashes, trace_hashes(&json_of(&three)), "--jobs 3");
    // The hashes differ between seeds (the comparison is not of eight copies of one value), and
    // each is the hash `converge run` gives for that seed alone.
    let distinct: std::collections::BTreeSet<&String> = hashes.iter().map(|(_, h)| h).collect();
    assert_eq!(distinct.len(), 8, "{hashes:?}");
    for (seed, hash) in hashes.iter().step_by(3) {
        let run = converge(
            &dir,
            &[
                "run",
                &file,
                "--seed",
                &seed.to_string(),
                "--json",
                "--out",
                "runs",
            ],
        );
        assert_eq!(&json_of(&run)["runs"][0]["trace_hash"], hash, "seed {seed}");
    }
    assert_eq!(json_of(&one)["counts"]["runs"], 8);

    // The library's `Verify`, with the same scenario and CRDT, sees the same traces.
    let scenario = converge::scenario_file::load(&dir.join(&file)).unwrap();
    let summary = converge::verify::Verify::new(scenario, |_| {
        converge::crdt::LwwGrid::new(converge::crdt::LwwGridConfig::default())
    })
    .seeds(0..8)
    .run()
    .unwrap()
    .unwrap();
    if std::env::var(converge::verify::SEED_VARIABLE).is_err()
        && std::env::var(converge::verify::SEEDS_VARIABLE).is_err()
    {
        assert_eq!(summary.trace_hashes, hashes, "converge::verify");
    }
}

/// Every run's `(seed, trace_hash)` of a sweep result, in the order the result lists them.
fn trace_hashes(document: &Value) -> Vec<(u64, String)> {
    document["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| {
            (
                r["seed"].as_u64().unwrap(),
                r["trace_hash"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn shards_merge_to_the_full_sweep() {
    let dir = scratch("shards");
    let file = write(&dir, "small.toml", SMALL);
    let full = converge(
        &dir,
        &[
            "sweep", &file, "--seeds", "0..9", "--jobs", "2", "--json", "--out", "full",
        ],
    );
    assert_eq!(full.status.code(), Some(0), "{}", text(&full));
    for shard in ["1/3", "2/3", "3/3"] {
        let output = converge(
            &dir,
            &[
                "sweep", &file, "--seeds", "0..9", "--shard", shard, "--json", "--out", "shards",
            ],
        );
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        let part = json_of(&output);
        let k: u64 = shard[..1].parse().unwrap();
        for run in part["runs"].as_array().unwrap() {
            assert_eq!(
                run["seed"].as_u64().unwrap() % 3,
                k - 1,
                "shard {shard} owns seed % 3 == {}",
                k - 1
            );
        }
    }
    let merged = converge(&dir, &["merge", "shards", "--json", "--out", "merged"]);
    assert_eq!(merged.status.code(), Some(0), "{}", text(&merged));
    let (full, merged) = (json_of(&full), json_of(&merged));
    assert_eq!(merged["counts"], full["counts"]);
    assert_eq!(merged["runs"], full["runs"]);
    assert_eq!(
        trace_hashes(&merged),
        trace_hashes(&full),
        "per-seed trace hashes"
    );
    assert_eq!(trace_hashes(&full).len(), 9);
    assert_eq!(merged["complete"], true);
    assert_eq!(merged["partial"], false);
    assert_eq!(merged["seeds_planned"], 9);
    assert_ne!(
        merged["run_id"], full["run_id"],
        "a merge is a run of its own"
    );

    // A shard given twice is refused.
    std::fs::create_dir_all(dir.join("twice")).unwrap();
    let shard_file = std::fs::read_dir(dir.join("shards"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().contains("shard1of3"))
        .unwrap();
    std::fs::copy(&shard_file, dir.join("twice/a.json")).unwrap();
    std::fs::copy(&shard_file, dir.join("twice/b.json")).unwrap();
    let overlap = converge(&dir, &["merge", "twice", "--out", "merged"]);
    assert_eq!(overlap.status.code(), Some(2), "{}", text(&overlap));
    assert!(
        String::from_utf8_lossy(&overlap.stderr).contains("appears twice"),
        "{}",
        text(&overlap)
    );
}

#[test]
fn a_report_replays_to_the_same_trace_hash() {
    let dir = scratch("replay");
    let file = write(&dir, "small.toml", SMALL);
    let run = converge(&dir, &["run", &file, "--seed", "11", "--out", "out"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let replay = converge(&dir, &["replay", "out/small-seed11.json"]);
    assert_eq!(replay.status.code(), Some(0), "{}", text(&replay));
    assert!(
        String::from_utf8_lossy(&replay.stdout).starts_with("reproduced"),
        "{}",
        text(&replay)
    );

    // A tampered hash does not reproduce.
    let report = std::fs::read_to_string(dir.join("out/small-seed11.json")).unwrap();
    let mut value: Value = serde_json::from_str(&report).unwrap();
    value["trace_hash"] = Value::from("0000000000000000");
    std::fs::write(dir.join("tampered.json"), value.to_string()).unwrap();
    let replay = converge(&dir, &["replay", "tampered.json"]);
    assert_eq!(replay.status.code(), Some(1), "{}", text(&replay));
}

#[test]
fn the_report_page_holds_its_sections() {
    let dir = scratch("html");
    let file = write(&dir, "small.toml", SMALL);
    let output = converge(&dir, &["run", &file, "--seed", "2", "--out", "out"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let html = std::fs::read_to_string(dir.join("out/small-seed2.html")).unwrap();
    for id in [
        "verdict",
        "reproduce",
        "metrics",
        "coverage",
        "timeline",
        "spacetime",
        "states",
        "stepper",
        "violations",
        "faults",
        "exports",
    ] {
        assert!(
            html.contains(&format!("id=\"{id}\"")),
            "section {id} missing"
        );
    }
    assert!(html.contains("<svg id=\"timeline-chart\""));
    assert!(html.contains("<svg class=\"spacetime-diagram\""));
    assert!(html.contains("converge run small.toml --seed 2"));
    assert!(html.contains("Expectation met"));
    assert!(
        html.contains("<table class=\"grid\">"),
        "a grid state is drawn as a table"
    );
    assert_eq!(
        html.matches("<script").count(),
        2,
        "only the stepper's data and its inline script"
    );
    assert!(
        !html.contains("src="),
        "no script or image is loaded from elsewhere"
    );
    assert!(!html.contains("<link"), "no external stylesheets or fonts");
    assert!(
        !html
            .replace("http://www.w3.org/2000/svg", "")
            .contains("http"),
        "nothing fetched"
    );

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/small-seed2.json")).unwrap())
            .unwrap();
    assert!(report["schema_version"].is_u64());
    assert_eq!(report["reproduce"], "converge run small.toml --seed 2");

    let trace: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("out/small-seed2.trace.json")).unwrap(),
    )
    .unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    for phase in ["X", "s", "f", "M"] {
        assert!(events.iter().any(|e| e["ph"] == phase), "a {phase} event");
    }
    let shiviz = std::fs::read_to_string(dir.join("out/small-seed2.shiviz.log")).unwrap();
    let mut lines = shiviz.lines();
    assert_eq!(
        lines.next(),
        Some(r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})")
    );
    assert_eq!(lines.next(), Some(""));
    let clock_line = lines.nth(1).unwrap();
    let (host, clock) = clock_line.split_once(' ').unwrap();
    let clock: Value = serde_json::from_str(clock).unwrap();
    assert!(clock[host].as_u64().unwrap() >= 1, "{clock_line}");

    let index = std::fs::read_to_string(dir.join("out/index.html")).unwrap();
    assert!(index.contains("id=\"matrix\""));
    assert!(index.contains("small-seed2.html"));
}

#[test]
fn a_diverging_run_is_shrunk_and_drawn() {
    let dir = scratch("shrunk");
    let scenario = scenarios_dir().join("07-dict-keep-local.toml");
    let output = converge(&dir, &["run", scenario.to_str().unwrap(), "--out", "out"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let html = std::fs::read_to_string(dir.join("out/dict-keep-local-seed0.html")).unwrap();
    assert!(html.contains("Diverged"), "the verdict in words");
    assert!(
        html.find("id=\"states\"") < html.find("id=\"violation-states\""),
        "final states first, the first violation second"
    );
    assert!(
        html.contains("id=\"stepper-data\""),
        "the stepper of the minimal counterexample"
    );
    assert!(html.contains("id=\"shrunk\""), "the minimal counterexample");
    assert!(
        html.contains("class=\"diff\""),
        "differing keys highlighted"
    );
    assert!(dir.join("out/dict-keep-local-seed0-minimal.toml").is_file());
    // The minimal scenario is itself a valid scenario file that fails the same way.
    let minimal = converge(
        &dir,
        &[
            "run",
            "out/dict-keep-local-seed0-minimal.toml",
            "--no-shrink",
            "--json",
            "--out",
            "out2",
        ],
    );
    assert_eq!(
        json_of(&minimal)["runs"][0]["verdict"],
        "diverges",
        "{}",
        text(&minimal)
    );
}

#[test]
fn check_finds_the_random_tie_break_and_passes_peer_id() {
    let dir = scratch("check");
    let random = converge(
        &dir,
        &[
            "check",
            "--crdt",
            "lww-grid",
            "--tie-break",
            "random",
            "--replicas",
            "3",
            "--writes",
            "1",
            "--network",
            "reliable",
            "--json",
        ],
    );
    assert_eq!(random.status.code(), Some(1), "{}", text(&random));
    let report = json_of(&random);
    assert_eq!(report["verdict"]["verdict"], "fail");
    assert!(report["unique_states"].as_u64().unwrap() > 0);
    assert!(report["states_per_sec"].as_f64().is_some());
    assert_eq!(
        report["counterexample"]["depth"], 4,
        "the shortest path: two writes, two deliveries"
    );

    let peer_id = converge(
        &dir,
        &[
            "check",
            "--crdt",
            "lww-grid",
            "--replicas",
            "3",
            "--writes",
            "1",
            "--network",
            "duplicating",
        ],
    );
    assert_eq!(peer_id.status.code(), Some(0), "{}", text(&peer_id));

    let unsupported = converge(
        &dir,
        &["check", "--crdt", "lww-dict", "--protocol", "delta-sync"],
    );
    assert_eq!(unsupported.status.code(), Some(2), "{}", text(&unsupported));
}

#[test]
fn check_passes_the_list_over_op_broadcast_and_catches_a_lost_op() {
    let dir = scratch("check-rga");
    let args = |network: &'static str| {
        [
            "check",
            "--crdt",
            "rga",
            "--protocol",
            "op-broadcast",
            "--replicas",
            "2",
            "--writes",
            "2",
            "--network",
            network,
            "--threads",
            "1",
            "--out",
            "out",
            "--json",
        ]
    };
    let duplicating = converge(&dir, &args("duplicating"));
    assert_eq!(duplicating.status.code(), Some(0), "{}", text(&duplicating));
    assert_eq!(json_of(&duplicating)["unique_states"], 2_101);
    let lossy = converge(&dir, &args("lossy"));
    assert_eq!(lossy.status.code(), Some(1), "{}", text(&lossy));
    let report = json_of(&lossy);
    assert_eq!(
        report["verdict"]["property"],
        "quiescent implies converged",
        "{}",
        text(&lossy)
    );
    assert_eq!(report["replay"]["reproduced"], true, "{}", text(&lossy));
}

#[test]
fn check_drops_connections_and_replays_op_streams_stall_and_sync_loop() {
    let dir = scratch("check-connections");
    let args = |on_reconnect: &'static str| {
        [
            "check",
            "--crdt",
            "lww-grid",
            "--protocol",
            "op-stream",
            "--on-reconnect",
            on_reconnect,
            "--network",
            "connections",
            "--connection-drops",
            "1",
            "--threads",
            "1",
            "--out",
            "out",
            "--json",
        ]
    };
    for (on_reconnect, property, depth, verdict) in [
        ("keep-position", "quiescent implies converged", 4, "stalled"),
        ("echo-handshake", "no sync loop", 11, "sync-loop"),
    ] {
        let check = converge(&dir, &args(on_reconnect));
        assert_eq!(check.status.code(), Some(1), "{}", text(&check));
        let report = json_of(&check);
        assert_eq!(report["verdict"]["property"], property, "{}", text(&check));
        assert_eq!(report["counterexample"]["depth"], depth, "{}", text(&check));
        assert_eq!(report["replay"]["reproduced"], true, "{}", text(&check));
        assert_eq!(report["replay"]["verdict"], verdict, "{}", text(&check));
    }
    let handshake = converge(&dir, &args("handshake"));
    assert_eq!(handshake.status.code(), Some(0), "{}", text(&handshake));

    let refused = converge(
        &dir,
        &[
            "check",
            "--crdt",
            "lww-grid",
            "--network",
            "connections",
            "--connection-drops",
            "4",
        ],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("connection_drops must be at most 3, got 4"),
        "{}",
        text(&refused)
    );
}

#[test]
fn a_failing_check_writes_a_scripted_scenario_that_replays_the_violation() {
    let dir = scratch("check-replay");
    let check = converge(
        &dir,
        &[
            "check",
            "--crdt",
            "lww-grid",
            "--tie-break",
            "keep-local",
            "--replicas",
            "3",
            "--threads",
            "1",
            "--out",
            "out",
        ],
    );
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    let stdout = String::from_utf8_lossy(&check.stdout);
    let scenario = "out/check-lww-grid-keep-local-state-broadcast-reliable-3x1.toml";
    assert!(dir.join(scenario).is_file(), "{}", text(&check));
    assert!(
        stdout.contains(&format!("converge run {scenario}")),
        "the replay command is printed:\n{}",
        text(&check)
    );

    let replay = converge(&dir, &["run", scenario, "--no-shrink", "--json"]);
    assert_eq!(replay.status.code(), Some(1), "{}", text(&replay));
    let runs = json_of(&replay);
    let run = &runs["runs"][0];
    assert_eq!(run["verdict"], "diverges", "{}", text(&replay));
    assert!(
        !run["violations"].as_array().unwrap().is_empty(),
        "{}",
        text(&replay)
    );

    let json = converge(
        &dir,
        &[
            "check",
            "--crdt",
            "lww-grid",
            "--tie-break",
            "keep-local",
            "--out",
            "out",
            "--json",
        ],
    );
    assert_eq!(json.status.code(), Some(1), "{}", text(&json));
    let report = json_of(&json);
    assert_eq!(report["replay"]["reproduced"], true, "{}", text(&json));
    assert!(report["replay"]["reproduce"]
        .as_str()
        .unwrap()
        .starts_with("converge run "));

    let usage = converge(&dir, &["check", "--crdt", "lww-grid", "--threads", "0"]);
    assert_eq!(usage.status.code(), Some(2), "{}", text(&usage));
}

/// Converges on some seeds, diverges on others: a random tie-break needs a concurrent equal-stamp
/// edit, which only some seeds draw.
const SOMETIMES_DIVERGES: &str = r#"
name = "sometimes-diverges"
replicas = 2
clock = "per-key-counter"
duration = "2s"
settle = "2s"

[crdt]
tie-break = "random"

[workload]
rate = 4.0
keys = 2

[expect]
verdict = "diverges"
"#;

#[test]
fn a_sweep_expecting_a_bug_is_met_when_some_seed_shows_it() {
    let dir = scratch("sweep-expect");
    let file = write(&dir, "sometimes.toml", SOMETIMES_DIVERGES);
    let output = converge(
        &dir,
        &[
            "sweep", &file, "--seeds", "0..20", "--jobs", "2", "--out", "out",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("expected diverges: met (6 of 20 seeds ended diverges; at least one was required); verdicts: 14 converges, 6 diverges"),
        "{}",
        text(&output)
    );
    assert!(
        !stdout.contains("FAILED"),
        "converged seeds are no surprise: {stdout}"
    );
    assert!(
        stdout.contains("shrunk to"),
        "the first diverging seeds are shrunk as evidence: {stdout}"
    );

    let json = converge(
        &dir,
        &["sweep", &file, "--seeds", "0..20", "--json", "--out", "out"],
    );
    assert_eq!(json_of(&json)["expectation"]["met"], true);
    assert_eq!(json_of(&json)["expectation"]["seeds_expected_verdict"], 6);

    // Half the seeds required: six are not enough.
    let strict = write(
        &dir,
        "strict.toml",
        &SOMETIMES_DIVERGES.replace(
            "verdict = \"diverges\"",
            "verdict = \"diverges\"\nseeds-share-min = 0.5",
        ),
    );
    let output = converge(
        &dir,
        &["sweep", &strict, "--seeds", "0..20", "--out", "out"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("NOT met (6 of 20 seeds ended diverges; at least 50% (10) were required)"),
        "{}",
        text(&output)
    );
    let bad = write(
        &dir,
        "bad.toml",
        &SOMETIMES_DIVERGES.replace(
            "verdict = \"diverges\"",
            "verdict = \"diverges\"\nseeds-share-min = 1.5",
        ),
    );
    let output = converge(&dir, &["sweep", &bad, "--seeds", "0..2", "--out", "out"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("expect.seeds-share-min"));
}

#[test]
fn help_describes_every_flag_and_every_exit_status() {
    let dir = scratch("help");
    let help = converge(&dir, &["--help"]);
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("130 interrupted by Ctrl-C"),
        "{}",
        text(&help)
    );
    let help = converge(&dir, &["check", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    // Every option line of the help is followed by its description on the same line or the next.
    let lines: Vec<&str> = help.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("--") {
            let own = trimmed
                .split_once("  ")
                .map(|(_, rest)| rest.trim())
                .unwrap_or("");
            let next = lines.get(i + 1).map_or("", |l| l.trim());
            assert!(
                !own.is_empty() || !(next.is_empty() || next.starts_with('-')),
                "{line:?} has no description:\n{help}"
            );
        }
    }
    assert!(help.contains("Exit status"), "{help}");
}

#[test]
fn a_directory_or_a_bare_file_gets_the_command_to_type() {
    let dir = scratch("suggest");
    write(&dir, "x.toml", SMALL);
    std::fs::create_dir_all(dir.join("scenarios")).unwrap();
    let output = converge(&dir, &["run", "scenarios"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is a directory, not a scenario file; to run every scenario in it: converge suite scenarios"), "{}", text(&output));
    let output = converge(&dir, &["x.toml"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("to run it, converge run x.toml"),
        "{}",
        text(&output)
    );
    let output = converge(&dir, &["scenarios"]);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("converge suite scenarios"),
        "{}",
        text(&output)
    );
}

#[test]
fn a_crdt_table_without_kind_is_a_grid() {
    let dir = scratch("crdt-kind");
    let file = write(
        &dir,
        "partial.toml",
        &SOMETIMES_DIVERGES.replace("[expect]\nverdict = \"diverges\"\n", ""),
    );
    let output = converge(
        &dir,
        &[
            "run",
            &file,
            "--seed",
            "1",
            "--json",
            "--no-shrink",
            "--out",
            "out",
        ],
    );
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "{}",
        text(&output)
    );
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("out/sometimes-diverges-seed1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["scenario_spec"]["crdt"]["kind"], "lww-grid");
    assert_eq!(report["scenario_spec"]["crdt"]["tie-break"], "random");
    let error = error_of(&dir, "bias.toml", "[crdt]\nbias = \"add\"\n");
    assert!(
        error.contains("key `bias` applies to kind = \"lww-dict\" only"),
        "{error}"
    );
    let error = error_of(
        &dir,
        "rga.toml",
        "[crdt]\nkind = \"rga\"\ntie-break = \"random\"\n",
    );
    assert!(
        error.contains("key `tie-break` does not apply to kind = \"rga\", which has no options"),
        "{error}"
    );
}

#[test]
fn pages_speak_in_words_and_human_units() {
    let dir = scratch("words");
    let swarm = scenarios_dir().join("20-stress-swarm.toml");
    let skew = scenarios_dir().join("10-wall-clock-skew.toml");
    let output = converge(
        &dir,
        &[
            "run",
            swarm.to_str().unwrap(),
            skew.to_str().unwrap(),
            "--no-shrink",
            "--out",
            "out",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let mut pages = String::new();
    for entry in std::fs::read_dir(dir.join("out")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "html") {
            pages.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    for debug_name in [
        "Diverges",
        "IntentViolated",
        "NotConverged",
        "StrongConvergence",
        "BoundReached",
    ] {
        assert!(
            !pages.contains(debug_name),
            "{debug_name} leaks into a page"
        );
    }
    let swarm_page = std::fs::read_to_string(dir.join("out/stress-swarm-seed0.html")).unwrap();
    assert!(
        swarm_page.contains("id=\"swarm\""),
        "what swarm mode drew is shown"
    );
    assert!(swarm_page.contains("# swarm mode drew, for this seed: drop = "));
    assert!(
        swarm_page.contains("id=\"faults-chart\""),
        "faults as a timeline"
    );
    let faults = &swarm_page
        [swarm_page.find("id=\"faults\"").unwrap()..swarm_page.find("id=\"exports\"").unwrap()];
    assert!(faults.contains("<li>"), "{faults}");
    assert!(
        !(0..10).any(|digit| faults.contains(&format!("{digit}us"))),
        "no raw microseconds in the fault list: {faults}"
    );
    for mark in [
        "writes end",
        "settle starts",
        "virtual time",
        "distinct states",
    ] {
        assert!(swarm_page.contains(mark), "the chart shows {mark}");
    }
}

/// Where Chromium is, if it is installed: `CONVERGE_CHROMIUM`, else `chromium` or
/// `chromium-browser` on the PATH.
fn chromium() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("CONVERGE_CHROMIUM") {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// The page's DOM after its scripts ran, from headless Chromium (a fresh profile, nothing fetched).
fn dump_dom(browser: &Path, profile: &Path, url: &str) -> String {
    let mut child = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
            url,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut dom = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut dom).map(|_| dom)
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish loading {url} within two minutes");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    reader.join().unwrap().unwrap()
}

/// The text inside the element with `id` (its first child text, entities undone).
fn text_of(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let after = &dom[start..];
    let open = after.find('>').unwrap() + 1;
    let close = after[open..].find("</").unwrap();
    after[open..open + close]
        .replace("&gt;", ">")
        .replace("&lt;", "<")
        .replace("&amp;", "&")
}

/// The stepper, seen in a real browser at given steps, against what the report itself says: the
/// event, the messages in flight (counted from the trace), the replicas' states at the end, and the
/// oracle line before and at the failure.
#[test]
fn the_stepper_shows_each_step_in_a_real_browser() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("CONVERGE_BROWSER_TESTS").is_err(),
            "CONVERGE_BROWSER_TESTS is set but no chromium was found (set CONVERGE_CHROMIUM or install chromium)"
        );
        eprintln!("skipped: the stepper's browser test needs chromium (apt-get install chromium); .ci/run runs it");
        return;
    };
    let dir = scratch("stepper");
    let scenario = scenarios_dir().join("01-grid-random-tiebreak.toml");
    let output = converge(
        &dir,
        &[
            "run",
            scenario.to_str().unwrap(),
            "--seed",
            "7",
            "--out",
            "out",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let minimal: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("out/grid-random-tiebreak-seed7-minimal.json")).unwrap(),
    )
    .unwrap();
    // The steps are the minimal run's events without its timers.
    let events: Vec<&Value> = minimal["trace"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] != "timer")
        .collect();
    let in_flight_after = |k: usize| {
        events[..k]
            .iter()
            .fold(0i64, |n, e| match e["kind"].as_str() {
                Some("send" | "duplicate") => n + 1,
                Some("deliver" | "drop") => n - 1,
                _ => n,
            })
    };
    let page = std::fs::canonicalize(dir.join("out/grid-random-tiebreak-seed7.html")).unwrap();
    let last = events.len();
    let profile = dir.join("chromium-profile");
    let middle = (1..last)
        .find(|&k| in_flight_after(k) > 0)
        .expect("a step with a message in flight");
    for k in [0, middle, last] {
        let dom = dump_dom(
            &browser,
            &profile,
            &format!("file://{}#step={k}", page.display()),
        );
        assert_eq!(
            text_of(&dom, "stepper-position"),
            format!("step {k} of {last}")
        );
        assert_eq!(
            text_of(&dom, "stepper-inflight-count"),
            in_flight_after(k).to_string(),
            "step {k}"
        );
        let event = text_of(&dom, "stepper-event");
        if k == 0 {
            assert_eq!(event, "Before the first event.");
            assert!(
                text_of(&dom, "stepper-oracle").starts_with("No oracle has failed yet"),
                "{dom}"
            );
        } else {
            assert!(
                event.starts_with(&format!("Event #{} at ", events[k - 1]["index"])),
                "step {k}: {event}"
            );
        }
    }
    let dom = dump_dom(
        &browser,
        &profile,
        &format!("file://{}#step={last}", page.display()),
    );
    assert!(
        text_of(&dom, "stepper-oracle").contains("strong convergence fails"),
        "{dom}"
    );
    // At the last step each replica shows the state the minimal run ended with.
    for replica in minimal["replicas"].as_array().unwrap() {
        let id = replica["replica"].as_u64().unwrap();
        let cells = replica["view"]["cells"].as_array().unwrap();
        let cols = replica["view"]["cols"].as_u64().unwrap() as usize;
        let texts: Vec<String> = cells
            .iter()
            .map(|c| {
                if c.is_null() {
                    "·".to_string()
                } else {
                    c.to_string()
                }
            })
            .collect();
        let width = texts.iter().map(|t| t.chars().count()).max().unwrap();
        let rows: Vec<String> = texts
            .chunks(cols)
            .map(|row| {
                row.iter()
                    .map(|t| format!("{t:>width$}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let row_start = dom.find(&format!("id=\"stepper-replica-{id}\"")).unwrap();
        let pre = &dom[row_start..];
        let pre = &pre[pre.find("class=\"state\">").unwrap() + "class=\"state\">".len()..];
        assert_eq!(
            &pre[..pre.find("</pre>").unwrap()],
            rows.join("\n"),
            "replica {id}"
        );
    }
}

/// The README's tour, command by command, run from a copy of the project's scenarios after the
/// main job, with the exit status its comment gives. The sweep runs 200 of its 10,000 seeds, so
/// that a test build stays quick (the full range runs in .ci/run's release sweeps).
#[test]
fn the_readme_commands_exit_as_documented() {
    let dir = scratch("readme");
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let copy = dir.join("scenarios");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(scenarios_dir()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
    }
    let main = converge(&dir, &[]);
    assert_eq!(
        main.status.code(),
        Some(0),
        "cargo run --release: {}",
        text(&main)
    );
    let tour: Vec<&str> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("cargo run --release -- "))
        .collect();
    assert_eq!(tour.len(), 5, "{readme}");
    for line in tour {
        let (command, comment) = line
            .split_once('#')
            .expect("each command says how it exits");
        let expected: i32 = comment
            .trim()
            .rsplit("exits ")
            .next()
            .unwrap()
            .parse()
            .expect("exits N");
        let args: Vec<&str> = command
            .split_whitespace()
            .map(|arg| if arg == "0..10000" { "0..200" } else { arg })
            .collect();
        let output = converge(&dir, &args);
        assert_eq!(
            output.status.code(),
            Some(expected),
            "{command}: {}",
            text(&output)
        );
    }
}

/// A shard of a sweep expected to show a bug, none of whose seeds shows it, has not failed:
/// the merge judges the sweep as a whole.
#[test]
fn a_shard_without_the_expected_bug_leaves_the_verdict_to_the_merge() {
    let dir = scratch("shard-bug");
    std::fs::write(
        dir.join("bug.toml"),
        "name = \"rare-bug\"\nreplicas = 3\nduration = \"2s\"\nsettle = \"1s\"\n[crdt]\nkind = \"lww-grid\"\ntie-break = \"random\"\n[protocol]\ntopology = \"relay\"\n[workload]\nrate = 1.0\n[expect]\nverdict = \"diverges\"\n",
    )
    .unwrap();
    for shard in ["1/2", "2/2"] {
        let output = converge(
            &dir,
            &[
                "sweep", "bug.toml", "--seeds", "0..4", "--shard", shard, "--out", "shards",
            ],
        );
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("judged when the shards are merged")
        );
    }
    let merged = converge(&dir, &["merge", "shards", "--out", "merged"]);
    assert_eq!(
        merged.status.code(),
        Some(1),
        "no seed diverged: the sweep's expectation fails"
    );
}
