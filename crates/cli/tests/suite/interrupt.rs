//! Ctrl-C: an interrupted `converge sweep`, `converge run` or suite stops promptly, writes a
//! partial report that says it is partial, and exits with status 130. And the simulator itself
//! stops when an observer asks it to.

use std::path::Path;
use std::time::{Duration, Instant};

use converge::crdt::{LwwGrid, LwwGridConfig};
use converge::netsim::{End, Observer, Scenario, TraceEvent, World, INTERRUPT_CHECK_EVENTS};
use serde_json::Value;

use crate::common;
use common::scratch;

/// An interrupted command must be gone within this long. It takes a few milliseconds on an idle
/// machine (the run loop looks at the flag every 1,024 actions); the margin is for a loaded CI
/// machine with two cores.
const EXIT_LATENCY_MAX: Duration = Duration::from_millis(2_000);

/// A scenario whose single run takes minutes: a tenth of a millisecond between anti-entropy rounds
/// among twenty replicas, for an hour of virtual time.
const LONG: &str = r#"
name = "long"
replicas = 20
duration = "1h"
settle = "1s"

[protocol]
kind = "anti-entropy"
interval = "100us"

[workload]
rate = 50.0
"#;

/// A scenario whose runs take a few milliseconds each, for sweeps of many seeds.
const SHORT: &str = r#"
name = "short"
replicas = 3
duration = "2s"
settle = "2s"

[protocol]
kind = "state-broadcast"
anti-entropy = "500ms"

[network]
drop = 0.1
"#;

#[cfg(unix)]
mod unix {
    use super::*;
    use std::process::{Child, Command, Stdio};

    fn spawn(dir: &Path, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_converge"))
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the converge binary starts")
    }

    /// Lets the command get going, sends it SIGINT as Ctrl-C would, and returns its exit status
    /// code, stdout and stderr, after checking that it exited promptly.
    fn interrupt(mut child: Child, after: Duration) -> (Option<i32>, String, String) {
        std::thread::sleep(after);
        assert!(
            child.try_wait().unwrap().is_none(),
            "the command is still running when interrupted"
        );
        let sent = Instant::now();
        let status = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exit = loop {
            if let Some(exit) = child.try_wait().unwrap() {
                break exit;
            }
            if sent.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("the command did not stop within 30 s of Ctrl-C");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let latency = sent.elapsed();
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        eprintln!("exited {latency:?} after Ctrl-C");
        assert!(
            latency < EXIT_LATENCY_MAX,
            "exited {latency:?} after Ctrl-C\n{stderr}"
        );
        (exit.code(), stdout, stderr)
    }

    fn json(path: &Path) -> Value {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn an_interrupted_sweep_reports_the_seeds_it_finished() {
        let dir = scratch("sweep");
        std::fs::write(dir.join("short.toml"), SHORT).unwrap();
        let child = spawn(
            &dir,
            &[
                "sweep",
                "short.toml",
                "--seeds",
                "0..1000000",
                "--jobs",
                "2",
                "--out",
                "out",
            ],
        );
        let (code, stdout, stderr) = interrupt(child, Duration::from_millis(1_500));
        assert_eq!(code, Some(130), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("Partial: interrupted by the user after"),
            "{stdout}"
        );
        let result = json(&dir.join("out/short-sweep-0-1000000.json"));
        assert_eq!(result["partial"], true);
        assert_eq!(result["seeds_planned"], 1_000_000);
        let runs = result["runs"].as_array().unwrap();
        assert_eq!(
            result["counts"]["runs"].as_u64().unwrap(),
            runs.len() as u64
        );
        assert!(
            !runs.is_empty() && runs.len() < 1_000_000,
            "{} seeds finished",
            runs.len()
        );
        let seeds: Vec<u64> = runs.iter().map(|r| r["seed"].as_u64().unwrap()).collect();
        assert!(seeds.windows(2).all(|w| w[0] < w[1]), "runs in seed order");
        assert!(runs.iter().all(|r| r["trace_hash"].as_str().is_some()));
        assert_eq!(result["run_id"].as_str().unwrap().len(), 16);
        let index = std::fs::read_to_string(dir.join("out/index.html")).unwrap();
        assert!(
            index.contains(&format!(
                "Partial:</b> sweep of short seeds 0..1000000: interrupted by the user after {} of 1000000 seeds",
                runs.len()
            )),
            "{index}"
        );
    }

    #[test]
    fn an_interrupted_run_writes_a_partial_report() {
        let dir = scratch("run");
        std::fs::write(dir.join("long.toml"), LONG).unwrap();
        let child = spawn(&dir, &["run", "long.toml", "--out", "out"]);
        let (code, stdout, stderr) = interrupt(child, Duration::from_millis(1_500));
        assert_eq!(code, Some(130), "{stdout}\n{stderr}");
        assert!(stderr.contains("partial report"), "{stderr}");
        let report = json(&dir.join("out/long-seed0.json"));
        assert_eq!(report["partial"], true);
        assert_eq!(report["end"]["kind"], "interrupted");
        assert_eq!(report["verdict"], "bound-reached");
        let note = report["partial_note"].as_str().unwrap();
        assert!(
            note.starts_with("interrupted by the user at virtual time"),
            "{note}"
        );
        assert!(report["end_ms"].as_f64().unwrap() < 3_600_000.0);
        let page = std::fs::read_to_string(dir.join("out/long-seed0.html")).unwrap();
        assert!(
            page.contains("<b>Partial:</b> interrupted by the user at virtual time"),
            "the page says it is partial"
        );
        assert!(page.contains("id=\"run-id\""));
    }

    #[test]
    fn an_interrupted_suite_says_how_far_it_got() {
        let dir = scratch("suite");
        std::fs::create_dir_all(dir.join("scenarios")).unwrap();
        std::fs::write(dir.join("scenarios/a-short.toml"), SHORT).unwrap();
        std::fs::write(dir.join("scenarios/b-long.toml"), LONG).unwrap();
        std::fs::write(
            dir.join("scenarios/c-long.toml"),
            LONG.replace("\"long\"", "\"long-too\""),
        )
        .unwrap();
        let child = spawn(&dir, &["suite", "scenarios", "--out", "out", "--json"]);
        let (code, stdout, stderr) = interrupt(child, Duration::from_millis(2_000));
        assert_eq!(code, Some(130), "{stdout}\n{stderr}");
        let document: Value = serde_json::from_str(&stdout).expect("one JSON document");
        assert_eq!(document["partial"], true);
        assert_eq!(
            document["partial_note"],
            "interrupted by the user after 1 of 3 scenarios"
        );
        assert_eq!(document["runs"].as_array().unwrap().len(), 1);
        assert_eq!(json(&dir.join("out/short-seed0.json"))["partial"], false);
        assert_eq!(json(&dir.join("out/long-seed0.json"))["partial"], true);
        assert!(!dir.join("out/long-too-seed0.json").exists());
        let index = std::fs::read_to_string(dir.join("out/index.html")).unwrap();
        assert!(index.contains("Partial:</b> interrupted by the user after 1 of 3 scenarios"));
        assert!(index.contains("Partial:</b> long seed 0: interrupted by the user at virtual time"));
    }
}

/// Asks the run to stop once it has seen `after` events.
struct StopAfter {
    seen: u64,
    after: u64,
}

impl Observer<LwwGrid> for StopAfter {
    fn on_event(&mut self, _event: &TraceEvent, _world: &World<'_, LwwGrid>) {
        self.seen += 1;
    }

    fn interrupted(&self) -> bool {
        self.seen >= self.after
    }
}

#[test]
fn the_simulator_stops_within_a_batch_of_the_request() {
    let scenario: Scenario = toml::from_str(LONG).unwrap();
    let mut observer = StopAfter {
        seen: 0,
        after: 5_000,
    };
    let outcome = converge::netsim::run(
        &scenario,
        0,
        &|_| LwwGrid::new(LwwGridConfig::default()),
        &mut observer,
    )
    .unwrap();
    assert_eq!(outcome.end, End::Interrupted);
    assert!(outcome.events >= 5_000);
    // Each action emits a few events at most (a write and its sends); the loop looks every
    // INTERRUPT_CHECK_EVENTS actions.
    assert!(
        outcome.events < 5_000 + 64 * INTERRUPT_CHECK_EVENTS,
        "{} events",
        outcome.events
    );
    assert!(outcome.end_us < scenario.duration.us);

    // An observer that never asks runs to the end, and the same seed gives the same trace as
    // far as both runs go: asking is not an event.
    let short: Scenario = toml::from_str(SHORT).unwrap();
    let mut never = StopAfter {
        seen: 0,
        after: u64::MAX,
    };
    let make = |_| LwwGrid::new(LwwGridConfig::default());
    let whole = converge::netsim::run(&short, 3, &make, &mut never).unwrap();
    let plain = converge::netsim::run(&short, 3, &make, &mut converge::netsim::NoObserver).unwrap();
    assert_eq!(whole.end, End::Completed);
    assert_eq!(whole.trace_hash, plain.trace_hash);
}
