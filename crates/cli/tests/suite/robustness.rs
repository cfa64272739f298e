//! End-to-end tests of issue 17's robustness points, each against the binary: relations between
//! keys, merges that verify their shards, reports that are never lost or half-written, reports
//! checked before `replay` and `shrink` use them, special files and terminal escapes, and the exit
//! status of a run whose reports could not be written. One named test per bug the probe found,
//! with its input as data.

use crate::common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{converge, scratch};
use serde_json::Value;

fn text(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Two replicas, one second: a run takes a few milliseconds.
const TINY: &str = "name = \"tiny\"\nreplicas = 2\nduration = \"1s\"\nsettle = \"1s\"\n";

fn tiny_named(name: &str, replicas: u32) -> String {
    format!("name = {name:?}\nreplicas = {replicas}\nduration = \"1s\"\nsettle = \"1s\"\n")
}

/// Files in `dir` (not below it) whose name satisfies `keep`.
fn files_in(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| keep(n))
        .collect();
    names.sort();
    names
}

// ---- 2. relations between keys ----

#[test]
fn a_partition_that_heals_before_it_starts_is_refused() {
    // Regression: accepted and run as a partition that never heals.
    let dir = scratch("heal-before-at");
    let file = "replicas = 3\n\n[[faults]]\nkind = \"join\"\nat = \"1s\"\nreplica = 2\n\n\
                [[faults]]\nkind = \"crash\"\nat = \"2s\"\nreplica = 0\nrestart = \"3s\"\n\n\
                [[faults]]\nkind = \"partition\"\nat = \"5s\"\nheal = \"2s\"\ngroups = [[0]]\n";
    std::fs::write(dir.join("x.toml"), file).unwrap();
    let output = converge(&dir, &["run", "x.toml", "--out", "out"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let first = stderr(&output)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        first.starts_with("error: x.toml:17:1: invalid scenario: key `faults[2].heal`: expected a time after at (5s), found 2s"),
        "{first}"
    );
    assert!(
        !dir.join("out").exists(),
        "nothing was run, nothing written"
    );
}

#[test]
fn a_restart_before_its_crash_is_refused() {
    // Regression: accepted; the replica stayed down for good.
    let dir = scratch("restart-before-crash");
    let file =
        "replicas = 3\n[[faults]]\nkind = \"crash\"\nat = \"4s\"\nreplica = 1\nrestart = \"1s\"\n";
    std::fs::write(dir.join("x.toml"), file).unwrap();
    let output = converge(&dir, &["run", "x.toml"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(stderr(&output).contains("key `faults[0].restart`: expected a time after at (4s)"));
}

#[test]
fn a_json_array_is_not_read_positionally_as_a_scenario() {
    // Regression: `["x", "", 2]` ran as a scenario named x with two replicas.
    let dir = scratch("json-array");
    std::fs::write(dir.join("x.json"), r#"["x", "", 2]"#).unwrap();
    let output = converge(&dir, &["run", "x.json", "--out", "out"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        stderr(&output).starts_with("error: x.json:1:1: expected a scenario, a table of keys"),
        "{}",
        text(&output)
    );
    assert!(stderr(&output).contains("found an array"));
    std::fs::write(dir.join("n.json"), "42").unwrap();
    let output = converge(&dir, &["run", "n.json"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("found a number"),
        "{}",
        text(&output)
    );
}

// ---- 3. merge verifies ----

/// Sweeps seeds 0..9 of TINY in three shards into `dir/shards` and returns the shard files.
fn three_shards(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::write(dir.join("tiny.toml"), TINY).unwrap();
    for shard in ["1/3", "2/3", "3/3"] {
        let output = converge(
            dir,
            &[
                "sweep",
                "tiny.toml",
                "--seeds",
                "0..9",
                "--shard",
                shard,
                "--jobs",
                "1",
                "--out",
                "shards",
            ],
        );
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    }
    let mut files: Vec<_> = files_in(&dir.join("shards"), |n| n.contains("-shard"))
        .into_iter()
        .map(|n| dir.join("shards").join(n))
        .collect();
    files.sort();
    assert_eq!(files.len(), 3);
    files
}

/// Copies the shards into a fresh directory `name`, lets `edit` change the first one's JSON, and
/// merges that directory.
fn merge_edited(
    dir: &Path,
    shards: &[std::path::PathBuf],
    name: &str,
    edit: impl Fn(&mut Value),
) -> Output {
    let target = dir.join(name);
    std::fs::create_dir_all(&target).unwrap();
    for (i, shard) in shards.iter().enumerate() {
        let mut value = read_json(shard);
        if i == 0 {
            edit(&mut value);
        }
        std::fs::write(
            target.join(shard.file_name().unwrap()),
            serde_json::to_string_pretty(&value).unwrap(),
        )
        .unwrap();
    }
    converge(
        dir,
        &["merge", name, "--json", "--out", &format!("{name}-out")],
    )
}

/// Sets a shard's counts to those of its runs, as the sweep would have written them.
fn recount(value: &mut Value) {
    let runs = value["runs"].as_array().unwrap().clone();
    let met = runs.iter().filter(|r| r["met_expectation"] == true).count();
    let vacuous = runs.iter().filter(|r| r["vacuous"] == true).count();
    let mut verdicts = serde_json::Map::new();
    for run in &runs {
        let verdict = run["verdict"].as_str().unwrap().to_string();
        let n = verdicts.get(&verdict).and_then(Value::as_u64).unwrap_or(0);
        verdicts.insert(verdict, (n + 1).into());
    }
    value["counts"] = serde_json::json!({
        "runs": runs.len(),
        "met_expectation": met,
        "failed_expectation": runs.len() - met,
        "vacuous": vacuous,
        "verdicts": verdicts,
    });
}

#[test]
fn merge_refuses_shards_that_are_not_what_the_sweep_wrote() {
    let dir = scratch("merge-verifies");
    let shards = three_shards(&dir);
    // The untouched shards merge, complete.
    let whole = merge_edited(&dir, &shards, "whole", |_| {});
    assert_eq!(whole.status.code(), Some(0), "{}", text(&whole));
    let merged: Value = serde_json::from_slice(&whole.stdout).unwrap();
    assert_eq!(merged["seeds_missing"], 0);
    assert_eq!(merged["complete"], true);

    // Regression: a shard missing a run merged with status 0.
    let missing = merge_edited(&dir, &shards, "missing", |v| {
        v["runs"].as_array_mut().unwrap().remove(1);
        recount(v);
    });
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(
        stderr(&missing).contains("shard 1/3 lacks 1 of its 3 seeds (the first: 3)"),
        "{}",
        text(&missing)
    );

    // Regression: a duplicated run merged.
    let duplicated = merge_edited(&dir, &shards, "duplicated", |v| {
        let run = v["runs"][0].clone();
        v["runs"].as_array_mut().unwrap().push(run);
    });
    assert_eq!(duplicated.status.code(), Some(2), "{}", text(&duplicated));
    assert!(
        stderr(&duplicated).contains("seed 0 appears twice"),
        "{}",
        text(&duplicated)
    );

    // Regression: a seed replaced by another of the shard merged.
    let replaced = merge_edited(&dir, &shards, "replaced", |v| {
        let runs = v["runs"].as_array_mut().unwrap();
        runs.remove(0);
        runs[0]["seed"] = 0.into();
        recount(v);
    });
    assert_eq!(replaced.status.code(), Some(2), "{}", text(&replaced));
    assert!(
        stderr(&replaced).contains("seed 0 has run id"),
        "{}",
        text(&replaced)
    );

    // Regression: a seed outside the sweep merged.
    let foreign = merge_edited(&dir, &shards, "foreign", |v| {
        v["runs"][0]["seed"] = 12.into();
    });
    assert_eq!(foreign.status.code(), Some(2), "{}", text(&foreign));
    assert!(
        stderr(&foreign).contains("seed 12 is not a seed of shard 1/3 of 0..9"),
        "{}",
        text(&foreign)
    );

    let counts = merge_edited(&dir, &shards, "counts", |v| v["counts"]["runs"] = 99.into());
    assert_eq!(counts.status.code(), Some(2), "{}", text(&counts));
    assert!(
        stderr(&counts).contains("its counts are not those of its runs"),
        "{}",
        text(&counts)
    );
    // A shard that says it is partial may lack seeds: the merge is written, partial, exits 1 and
    // counts the seed that has no run.
    let partial = merge_edited(&dir, &shards, "partial", |v| {
        v["runs"].as_array_mut().unwrap().remove(1);
        recount(v);
        v["partial"] = true.into();
    });
    assert_eq!(partial.status.code(), Some(1), "{}", text(&partial));
    let merged: Value = serde_json::from_slice(&partial.stdout).unwrap();
    assert_eq!(
        (merged["partial"].clone(), merged["seeds_missing"].clone()),
        (true.into(), 1.into())
    );
    assert_eq!(merged["complete"], true, "every shard is there");

    let version = merge_edited(&dir, &shards, "version", |v| v["schema_version"] = 7.into());
    assert_eq!(version.status.code(), Some(2), "{}", text(&version));
    assert!(
        stderr(&version).contains("schema version 7"),
        "{}",
        text(&version)
    );

    let other_range = merge_edited(&dir, &shards, "range", |v| v["seeds"]["end"] = 12.into());
    assert_eq!(other_range.status.code(), Some(2), "{}", text(&other_range));
    assert!(
        stderr(&other_range).contains("run id"),
        "{}",
        text(&other_range)
    );
}

#[test]
fn merge_refuses_a_truncated_shard_and_says_what_is_missing() {
    let dir = scratch("merge-truncated");
    let shards = three_shards(&dir);
    // Regression: a truncated shard was skipped and the merge of the others reported.
    let cut = dir.join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    for shard in &shards {
        std::fs::copy(shard, cut.join(shard.file_name().unwrap())).unwrap();
    }
    let victim = cut.join(shards[1].file_name().unwrap());
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
    let output = converge(&dir, &["merge", "cut", "--out", "cut-out"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        stderr(&output).contains("not whole JSON (truncated?)"),
        "{}",
        text(&output)
    );

    // A shard left out entirely: the merge is written, says what is missing, and exits 1.
    let two = dir.join("two");
    std::fs::create_dir_all(&two).unwrap();
    for shard in &shards[..2] {
        std::fs::copy(shard, two.join(shard.file_name().unwrap())).unwrap();
    }
    let output = converge(&dir, &["merge", "two", "--out", "two-out"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("incomplete: shards 3 of 3 are missing"),
        "{stdout}"
    );
    assert!(
        stdout.contains("incomplete: 3 of the 9 seeds of 0..9 have no run"),
        "{stdout}"
    );
    let merged = files_in(&dir.join("two-out"), |n| n.ends_with("-merged.json"));
    let merged = read_json(&dir.join("two-out").join(&merged[0]));
    assert_eq!(merged["seeds_missing"], 3);
    assert_eq!(merged["complete"], false);
}

// ---- 4. no report lost or half-written ----

#[test]
fn concurrent_runs_into_one_directory_keep_every_report() {
    // Regression: runs writing the same report name at once lost reports, and the index written
    // by the one that listed the directory first lacked the others' entries. Without the lock,
    // about one round in four of five processes lost something on the test machine.
    let dir = scratch("concurrent");
    let files = ["a.toml", "b.toml", "c.toml", "d.toml", "o.toml"];
    for (i, file) in files.iter().enumerate() {
        let name = if *file == "o.toml" { "other" } else { "same" };
        std::fs::write(dir.join(file), tiny_named(name, 2 + i as u32)).unwrap();
    }
    let binary = env!("CARGO_BIN_EXE_converge");
    for round in 0..10 {
        let out = format!("out{round}");
        let children: Vec<_> = files
            .iter()
            .map(|file| {
                std::process::Command::new(binary)
                    .args(["run", file, "--out", &out])
                    .current_dir(&dir)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
        let out = dir.join(&out);
        // The four runs named "same" are four runs: one report in place, three kept aside.
        assert!(out.join("same-seed0.json").exists(), "round {round}");
        let kept = std::fs::read_dir(out.join("previous")).map_or(0, |d| d.count());
        assert_eq!(
            kept, 3,
            "round {round}: the other runs' reports are kept in previous/"
        );
        let index = std::fs::read_to_string(out.join("index.html")).unwrap();
        assert!(
            index.contains("same-seed0.html") && index.contains("other-seed0.html"),
            "round {round}: the index lists both names"
        );
        assert!(
            files_in(&out, |n| n.ends_with(".tmp")).is_empty(),
            "round {round}"
        );
    }
}

#[cfg(unix)]
#[test]
fn a_run_waits_for_the_directory_another_converge_holds_and_says_so() {
    use std::os::unix::io::AsRawFd as _;
    let dir = scratch("lock-wait");
    std::fs::write(dir.join("tiny.toml"), TINY).unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    // Hold the directory's lock as another converge writing there would.
    let held = std::fs::File::open(dir.join("out")).unwrap();
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_converge"))
        .args(["run", "tiny.toml", "--out", "out"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2_500));
    assert!(
        !dir.join("out/tiny-seed0.json").exists(),
        "nothing written while the lock is held"
    );
    drop(held);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        stderr(&output).contains("note: waiting for another converge that is writing into out"),
        "{}",
        text(&output)
    );
    assert!(dir.join("out/tiny-seed0.json").exists());
}

#[test]
fn stale_temporary_files_are_removed_and_live_ones_kept() {
    let dir = scratch("stale");
    std::fs::write(dir.join("tiny.toml"), TINY).unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    // A process id above the largest Linux allows is never running; our own test process is.
    let stale = ".tiny-seed0.json.4294967295-0.tmp";
    let old_style = ".tiny-seed0.html.4194304.tmp";
    let live = format!(".other.json.{}-3.tmp", std::process::id());
    for name in [stale, old_style, &live] {
        std::fs::write(dir.join("out").join(name), "half a rep").unwrap();
    }
    let output = converge(&dir, &["run", "tiny.toml", "--out", "out"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        stderr(&output).contains("note: removed 2 temporary files"),
        "{}",
        text(&output)
    );
    assert_eq!(
        files_in(&dir.join("out"), |n| n.ends_with(".tmp")),
        vec![live]
    );
}

#[test]
fn names_that_sanitize_alike_get_distinct_files() {
    // Regression: `a/b` and `a:b` both wrote a-b-seed0.*, and the index listed one.
    let dir = scratch("sanitize");
    std::fs::write(dir.join("1.toml"), tiny_named("a/b", 2)).unwrap();
    std::fs::write(dir.join("2.toml"), tiny_named("a:b", 2)).unwrap();
    std::fs::write(dir.join("3.toml"), tiny_named("a-b", 2)).unwrap();
    let output = converge(&dir, &["run", "1.toml", "2.toml", "3.toml", "--out", "out"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let reports = files_in(&dir.join("out"), |n| n.ends_with("-seed0.json"));
    assert_eq!(reports.len(), 3, "{reports:?}");
    assert!(
        reports.contains(&"a-b-seed0.json".to_string()),
        "a safe name keeps its file name"
    );
    assert!(
        !dir.join("out/previous").exists(),
        "nothing was moved aside: {reports:?}"
    );
    let index = std::fs::read_to_string(dir.join("out/index.html")).unwrap();
    for report in &reports {
        assert!(
            index.contains(&report.replace(".json", ".html")),
            "{report}"
        );
    }
}

/// Runs the binary with its file size limited to `bytes` (as a full disk would stop it: a write
/// past the limit fails with EFBIG instead of ENOSPC).
#[cfg(unix)]
fn converge_with_file_size_limit(dir: &Path, args: &[&str], bytes: u64) -> Output {
    use std::os::unix::process::CommandExt as _;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_converge"));
    command.args(args).current_dir(dir);
    // SAFETY: between fork and exec only async-signal-safe calls are made (signal, setrlimit).
    unsafe {
        command.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: libc::RLIM_INFINITY,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.output().unwrap()
}

#[cfg(unix)]
#[test]
fn a_full_disk_exits_3_after_the_verdict_and_leaves_nothing_behind() {
    // Regression: a failure to write reports exited 2 ("bad input, nothing was run") without the
    // verdict, left its temporary file, and the next run failed too.
    let dir = scratch("full-disk");
    std::fs::write(dir.join("tiny.toml"), TINY).unwrap();
    std::fs::write(dir.join("two.toml"), tiny_named("two", 2)).unwrap();
    let output = converge_with_file_size_limit(
        &dir,
        &["run", "tiny.toml", "two.toml", "--out", "out"],
        2_048,
    );
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("\ntwo seed 0: converges"),
        "the next scenario still runs: {}",
        text(&output)
    );
    assert!(
        stdout.contains("2 of 2 runs met their expectation. Reports: not written"),
        "{}",
        text(&output)
    );
    assert!(
        stdout.starts_with("tiny seed 0: converges (expected converges) ok"),
        "{}",
        text(&output)
    );
    assert!(
        stderr(&output).contains("could not all be written"),
        "{}",
        text(&output)
    );
    assert!(
        stderr(&output).contains("cannot write"),
        "{}",
        text(&output)
    );
    assert!(files_in(&dir.join("out"), |n| n.ends_with(".tmp")).is_empty());
    // With space back, the next run works and writes everything.
    let output = converge(&dir, &["run", "tiny.toml", "--out", "out"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(dir.join("out/tiny-seed0.json").exists() && dir.join("out/index.html").exists());

    // A sweep prints its result first as well, and exits 3.
    let output = converge_with_file_size_limit(
        &dir,
        &[
            "sweep",
            "tiny.toml",
            "--seeds",
            "0..3",
            "--jobs",
            "1",
            "--out",
            "sweep",
        ],
        64,
    );
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("tiny: 3 seeds"),
        "{}",
        text(&output)
    );
    assert!(files_in(&dir.join("sweep"), |n| n.ends_with(".tmp")).is_empty());

    // A model check prints its verdict before its scripted counterexample fails to be written.
    let output = converge_with_file_size_limit(
        &dir,
        &[
            "check",
            "--crdt",
            "lww-grid",
            "--tie-break",
            "random",
            "--replicas",
            "2",
            "--writes",
            "1",
            "--out",
            "check",
        ],
        16,
    );
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("FAIL: strong convergence"),
        "{}",
        text(&output)
    );
    assert!(files_in(&dir.join("check"), |n| n.ends_with(".tmp")).is_empty());
}

// ---- 5. reports checked before use ----

/// Runs TINY (seed 4) into `dir/out` and returns the report's path, relative to `dir`.
fn tiny_report(dir: &Path) -> &'static str {
    std::fs::write(dir.join("tiny.toml"), TINY).unwrap();
    let output = converge(dir, &["run", "tiny.toml", "--seed", "4", "--out", "out"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    "out/tiny-seed4.json"
}

/// A change made to a report's JSON.
type Edit = fn(&mut Value);

fn edit_report(dir: &Path, report: &str, to: &str, edit: impl Fn(&mut Value)) {
    let mut value = read_json(&dir.join(report));
    edit(&mut value);
    std::fs::write(dir.join(to), serde_json::to_string_pretty(&value).unwrap()).unwrap();
}

#[test]
fn replay_and_shrink_refuse_tampered_reports() {
    // Regression: both acted on reports with an edited scenario, run id or schema version.
    let dir = scratch("tampered");
    let report = tiny_report(&dir);
    let cases: [(&str, Edit, &str); 4] = [
        (
            "scenario.json",
            |v| v["scenario_spec"]["replicas"] = 3.into(),
            "key `run_id`: expected",
        ),
        ("seed.json", |v| v["seed"] = 5.into(), "key `run_id`"),
        (
            "run-id.json",
            |v| v["run_id"] = "0123456789abcdef".into(),
            "key `run_id`",
        ),
        (
            "schema.json",
            |v| v["schema_version"] = 2.into(),
            "key `schema_version`: expected 1, found 2",
        ),
    ];
    for (name, edit, expected) in cases {
        edit_report(&dir, report, name, edit);
        for command in ["replay", "shrink"] {
            let output = converge(
                &dir,
                &[command, name, "--out", "shrunk"][..if command == "replay" { 2 } else { 4 }],
            );
            assert_eq!(
                output.status.code(),
                Some(2),
                "{command} {name}: {}",
                text(&output)
            );
            assert!(
                stderr(&output).contains(expected),
                "{command} {name}: {}",
                text(&output)
            );
            assert!(
                stderr(&output).contains("the report was edited"),
                "{command} {name}: {}",
                text(&output)
            );
        }
    }
    // An edited trace hash: replay says the hash was edited (two reruns agree, every other
    // figure matches); shrink refuses.
    edit_report(&dir, report, "hash.json", |v| {
        v["trace_hash"] = "00000000deadbeef".into()
    });
    let output = converge(&dir, &["replay", "hash.json"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("the report's trace_hash was most likely edited"),
        "{}",
        text(&output)
    );
    let output = converge(&dir, &["shrink", "hash.json", "--out", "shrunk"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        stderr(&output).contains("Nothing was shrunk"),
        "{}",
        text(&output)
    );
    edit_report(&dir, report, "bad-hash.json", |v| {
        v["trace_hash"] = "\u{1b}[2J".into()
    });
    let output = converge(&dir, &["replay", "bad-hash.json"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(stderr(&output).contains("key `trace_hash`: expected 16 hex digits"));
    assert!(
        !stderr(&output).contains('\u{1b}'),
        "escaped: {}",
        text(&output)
    );
    // The report as written replays.
    let output = converge(&dir, &["replay", report]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
}

#[test]
fn replay_of_a_partial_report_says_so_and_checks_determinism_instead() {
    let dir = scratch("partial-replay");
    let report = tiny_report(&dir);
    edit_report(&dir, report, "partial.json", |v| {
        v["partial"] = true.into();
        v["partial_note"] = "interrupted by the user at virtual time 3.0 ms of 2000.0 ms".into();
        v["trace_hash"] = "0000000000000001".into();
    });
    let output = converge(&dir, &["replay", "partial.json"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        stderr(&output).contains("note: the report is partial (interrupted by the user"),
        "{}",
        text(&output)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("as a second run does"),
        "{}",
        text(&output)
    );
}

// ---- 6. terminal and special files ----

#[test]
fn escape_codes_never_reach_the_terminal() {
    // Regression: a scenario name with terminal escape codes was printed raw.
    let dir = scratch("escapes");
    std::fs::write(
        dir.join("x.toml"),
        "name = \"evil\\u001b[2J\\u001b]52;c;aGk=\\u0007\"\n",
    )
    .unwrap();
    let output = converge(&dir, &["run", "x.toml", "--out", "out"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        stderr(&output).contains("key `name`: expected a name without control characters"),
        "{}",
        text(&output)
    );
    // A path with an escape in it is shown escaped too.
    let evil = "bad\u{1b}[31m.toml";
    std::fs::write(dir.join(evil), "replicas = 0\n").unwrap();
    let output = converge(&dir, &["run", evil]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    for stream in [&output.stdout, &output.stderr] {
        assert!(!stream.contains(&0x1b), "{}", text(&output));
    }
    assert!(
        stderr(&output).contains("bad\\u{1b}[31m.toml"),
        "{}",
        text(&output)
    );
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_at_once_wherever_a_file_is_read() {
    // Regression: opening a FIFO with no writer blocked forever (and Ctrl-C did nothing).
    let dir = scratch("fifo");
    for name in ["x.toml", "r.json"] {
        let path = std::ffi::CString::new(dir.join(name).to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only creates the file.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    }
    std::fs::create_dir_all(dir.join("shards")).unwrap();
    std::fs::rename(dir.join("r.json"), dir.join("shards/r.json")).unwrap();
    for (args, expected) in [
        (
            &["run", "x.toml"][..],
            "x.toml: a FIFO (named pipe), not a regular file",
        ),
        (&["sweep", "x.toml", "--seeds", "0..2"][..], "a FIFO"),
        (
            &["replay", "shards/r.json"][..],
            "shards/r.json: a FIFO (named pipe), not a regular file",
        ),
        (&["merge", "shards"][..], "a FIFO"),
        (
            &["run", "/dev/zero"][..],
            "/dev/zero: a device, not a regular file",
        ),
        (
            &["run", "shards"][..],
            "shards: is a directory, not a scenario file; to run every scenario in it: converge suite shards",
        ),
    ] {
        let started = Instant::now();
        let output = converge(&dir, args);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{args:?} returned at once"
        );
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
        assert!(
            stderr(&output).contains(expected),
            "{args:?}: {}",
            text(&output)
        );
    }
}

#[cfg(unix)]
#[test]
fn the_first_ctrl_c_ends_a_command_still_reading_its_input() {
    // Regression: the Ctrl-C handler was installed before the input was read, so the first
    // Ctrl-C while loading did nothing (nothing polls the flag there) and the command went on.
    use std::os::unix::process::ExitStatusExt as _;
    let dir = scratch("ctrl-c-loading");
    // 140,000 explicit writes (5.6 MB): seconds of parsing in a test build.
    let mut text =
        String::from("replicas = 3\nduration = \"10s\"\n[workload]\nrate = 0.0\nops = [\n");
    for i in 0..140_000u64 {
        text.push_str(&format!(
            "{{at=\"{}us\",replica={},key=0,value=1}},\n",
            1 + i,
            i % 3
        ));
    }
    text.push_str("]\n");
    std::fs::write(dir.join("big.toml"), text).unwrap();
    use std::os::unix::process::CommandExt as _;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_converge"));
    command
        .args(["run", "big.toml", "--out", "out"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // A shell that starts a job in the background starts it with Ctrl-C ignored, and the test's
    // child would inherit that: give it the disposition a terminal gives a command.
    // SAFETY: between fork and exec only `signal`, which is async-signal-safe, is called.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "still loading when interrupted"
    );
    let sent = Instant::now();
    // SAFETY: signalling the child this test started.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGINT),
        "ended by the Ctrl-C itself: {status:?}"
    );
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "at once: {:?}",
        sent.elapsed()
    );
    assert!(!dir.join("out").exists(), "nothing was written");
}

// ---- 7. exit statuses documented ----

#[test]
fn help_documents_every_exit_status() {
    let dir = scratch("help");
    let output = converge(&dir, &["--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    for status in ["0 every run", "1 some", "2 bad input", "3 ", "130 "] {
        assert!(
            help.contains(status),
            "--help names exit status {status:?}:\n{help}"
        );
    }
}
