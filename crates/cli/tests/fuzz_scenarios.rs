//! Fuzzing scenario parsing and validation with proptest, inside `cargo test`.
//!
//! Three generators feed `scenario_file::parse_and_validate`: arbitrary bytes, scenario-shaped
//! TOML trees (the real keys, mostly sensible values, sometimes extreme or of the wrong type,
//! sometimes an unknown key), written out both as TOML and as JSON, and the real scenario files
//! with bytes cut out, changed or repeated. The properties: nothing panics, nothing takes long
//! (every case is timed), every refusal is a clear error (it names the file, is at most a few
//! short lines, and holds no control character), and every scenario that is accepted runs,
//! judged by every oracle, without panicking.
//!
//! The default is 1,000 cases per generator, which keeps the test within a few seconds in a test
//! build; `CONVERGE_FUZZ_CASES=100000 cargo test --release -p converge --test fuzz_scenarios`
//! fuzzes for longer. Failing cases are shrunk by proptest and printed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use converge::checker::judge_builtin;
use converge::scenario_file::{parse_and_validate, Format, ScenarioFileError};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use toml::{Table, Value};

/// The environment variable that sets the number of cases per generator.
const CASES_VARIABLE: &str = "CONVERGE_FUZZ_CASES";
const CASES_DEFAULT: u32 = 1_000;

/// No case may take longer than this, parsing, validating and (when accepted) running included.
const CASE_TIME_MAX: Duration = Duration::from_secs(5);

/// Accepted scenarios run with at most this many events, so that a fuzz case stays short; the
/// run still goes through every part of the simulator and the oracles.
const FUZZ_EVENTS_MAX: u64 = 5_000;

/// Cases refused, and cases accepted and run, by one test; printed at its end (run with
/// `--nocapture` to see them): a generator that never gets past the parser fuzzes little.
#[derive(Default)]
struct Tally {
    refused: AtomicUsize,
    accepted: AtomicUsize,
}

impl Tally {
    fn print(&self, test: &str) {
        eprintln!(
            "{test}: {} inputs refused, {} accepted and run",
            self.refused.load(Ordering::Relaxed),
            self.accepted.load(Ordering::Relaxed)
        );
    }
}

fn cases() -> u32 {
    std::env::var(CASES_VARIABLE)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(CASES_DEFAULT)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        // Failures are printed with the shrunk input; this test keeps no regression files.
        failure_persistence: None,
        ..Config::default()
    })
}

/// A refusal must be a clear error: it names the file first, is at most an error line and a quote
/// of the offending line with its caret, keeps every line short, and prints no control character.
fn assert_clear(error: &ScenarioFileError, path: &str) -> Result<(), TestCaseError> {
    let text = error.to_string();
    let lines: Vec<&str> = text.lines().collect();
    prop_assert!(text.starts_with(path), "names the file: {text}");
    prop_assert!(lines.len() <= 4, "a few lines: {text}");
    for line in &lines {
        prop_assert!(line.chars().count() <= 600, "a short line: {line}");
        prop_assert!(
            !line.chars().any(char::is_control),
            "no control character: {line:?}"
        );
    }
    if let ScenarioFileError::Invalid { message, .. } = error {
        prop_assert!(message.starts_with("key `"), "names the key: {message}");
    }
    Ok(())
}

/// Parses, validates and, when accepted, runs `text`, within [`CASE_TIME_MAX`].
fn check(text: &str, format: Format, tally: &Tally) -> Result<(), TestCaseError> {
    let path = match format {
        Format::Toml => "fuzz.toml",
        Format::Json => "fuzz.json",
    };
    let started = Instant::now();
    match parse_and_validate(text, format, path) {
        Err(error) => {
            tally.refused.fetch_add(1, Ordering::Relaxed);
            assert_clear(&error, path)?;
        }
        Ok(mut scenario) => {
            tally.accepted.fetch_add(1, Ordering::Relaxed);
            scenario.bounds.events_max = scenario.bounds.events_max.min(FUZZ_EVENTS_MAX);
            let report = judge_builtin(&scenario, 7);
            prop_assert!(report.is_ok(), "a validated scenario runs: {report:?}");
        }
    }
    let elapsed = started.elapsed();
    prop_assert!(elapsed < CASE_TIME_MAX, "took {elapsed:?}");
    Ok(())
}

#[test]
fn arbitrary_bytes_are_refused_clearly_or_run() {
    let tally = Tally::default();
    runner()
        .run(&prop::collection::vec(any::<u8>(), 0..512), |bytes| {
            let text = String::from_utf8_lossy(&bytes);
            check(&text, Format::Toml, &tally)?;
            check(&text, Format::Json, &tally)
        })
        .unwrap();
    tally.print("arbitrary_bytes_are_refused_clearly_or_run");
}

// ----- scenario-shaped trees -----

fn int() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => (0i64..8).prop_map(Value::Integer),
        2 => (0i64..100_000).prop_map(Value::Integer),
        1 => prop_oneof![
            Just(-1i64),
            Just(i64::from(u32::MAX)),
            Just(4_000_000_000),
            Just(i64::MAX),
            Just(i64::MIN),
            any::<i64>(),
        ]
        .prop_map(Value::Integer),
    ]
    .boxed()
}

fn float() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => (0.0f64..1.0).prop_map(Value::Float),
        2 => (0.0f64..100.0).prop_map(Value::Float),
        1 => prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-1.0),
            Just(1e9),
            Just(1e300),
            Just(f64::MIN_POSITIVE),
        ]
        .prop_map(Value::Float),
    ]
    .boxed()
}

fn duration() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => (0u64..5_000).prop_map(|ms| Value::String(format!("{ms}ms"))),
        2 => (0u64..20).prop_map(|s| Value::String(format!("{s}s"))),
        1 => prop_oneof![
            Just("0us"),
            Just("1us"),
            Just("1.5s"),
            Just("100000000h"),
            Just("18446744073709551615us"),
            Just("1e400s"),
            Just("-1s"),
            Just("10"),
            Just("x"),
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ]
    .boxed()
}

fn word(words: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![
        9 => prop::sample::select(words).prop_map(|w| Value::String(w.to_string())),
        1 => "[a-z-]{0,12}".prop_map(Value::String),
    ]
    .boxed()
}

/// Any leaf, of any type: what a mistyped value looks like.
fn any_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        int(),
        float(),
        duration(),
        any::<bool>().prop_map(Value::Boolean),
        ".{0,40}".prop_map(Value::String),
        Just(Value::Array(Vec::new())),
        Just(Value::Table(Table::new())),
    ]
    .boxed()
}

/// A table with each of `fields` present half the time; now and then one value is replaced by a
/// leaf of another type, or an unknown key is added.
fn table(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let entries: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .into_iter()
        .map(|(key, strategy)| {
            prop::option::of(strategy.prop_map(move |v| (key.to_string(), v))).boxed()
        })
        .collect();
    (
        entries,
        prop::option::weighted(0.05, ("[a-z_-]{1,10}", any_leaf())),
        prop::option::weighted(0.05, (0usize..16, any_leaf())),
    )
        .prop_map(|(entries, unknown, retyped)| {
            let mut table = Table::new();
            for (key, value) in entries.into_iter().flatten() {
                table.insert(key, value);
            }
            if let Some((index, leaf)) = retyped {
                let keys: Vec<String> = table.keys().cloned().collect();
                if let Some(key) = keys.get(index % keys.len().max(1)) {
                    table.insert(key.clone(), leaf);
                }
            }
            if let Some((key, leaf)) = unknown {
                table.insert(key, leaf);
            }
            Value::Table(table)
        })
        .boxed()
}

fn array(item: BoxedStrategy<Value>, max: usize) -> BoxedStrategy<Value> {
    prop::collection::vec(item, 0..max)
        .prop_map(Value::Array)
        .boxed()
}

fn latency() -> BoxedStrategy<Value> {
    table(vec![
        (
            "kind",
            word(&["constant", "uniform", "exponential", "normal", "pareto"]),
        ),
        ("value", duration()),
        ("min", duration()),
        ("max", duration()),
        ("mean", duration()),
        ("stddev", duration()),
        ("scale", duration()),
        ("shape", float()),
    ])
}

fn scenario_tree() -> BoxedStrategy<Value> {
    let crdt = table(vec![
        ("kind", word(&["lww-grid", "lww-dict"])),
        ("rows", int()),
        ("cols", int()),
        ("tie-break", word(&["peer-id", "random", "keep-local"])),
        ("bias", word(&["add", "remove"])),
    ]);
    let protocol = table(vec![
        (
            "kind",
            word(&[
                "state-broadcast",
                "anti-entropy",
                "op-broadcast",
                "reliable-causal",
                "delta-sync",
                "merkle-anti-entropy",
                "op-stream",
            ]),
        ),
        ("topology", word(&["mesh", "relay", "gossip"])),
        ("fanout", int()),
        ("interval", duration()),
        ("anti-entropy", duration()),
        (
            "snapshot-on-join",
            any::<bool>().prop_map(Value::Boolean).boxed(),
        ),
        ("retransmit-timeout", duration()),
        ("retransmit-max", int()),
        ("delta-position", word(&["log-position", "version-vector"])),
        (
            "on-reconnect",
            word(&["handshake", "keep-position", "echo-handshake"]),
        ),
    ]);
    let link = table(vec![
        ("from", int()),
        ("to", int()),
        ("drop", float()),
        ("duplicate", float()),
        ("latency", latency()),
    ]);
    let network = table(vec![
        ("latency", latency()),
        ("latency-min", duration()),
        ("latency-max", duration()),
        ("drop", float()),
        ("duplicate", float()),
        ("links", array(link, 4)),
        ("settle-drop", word(&["none", "as-configured"])),
        ("in-order", any::<bool>().prop_map(Value::Boolean).boxed()),
        ("reconnect-after", duration()),
    ]);
    let op = table(vec![
        ("at", duration()),
        ("replica", int()),
        ("key", int()),
        ("value", int()),
    ]);
    let workload = table(vec![
        ("rate", float()),
        ("keys", int()),
        ("values", int()),
        ("remove-ratio", float()),
        ("writers", array(int(), 4)),
        ("stop", duration()),
        ("ops", array(op, 6)),
    ]);
    let fault = table(vec![
        (
            "kind",
            word(&[
                "partition",
                "isolate",
                "bridge",
                "crash",
                "join",
                "leave",
                "clock-skew",
                "server-outage",
                "connection-drop",
            ]),
        ),
        ("at", duration()),
        ("nodes", array(int(), 3)),
        ("reconnect", duration()),
        ("heal", duration()),
        ("restart", duration()),
        ("until", duration()),
        ("replica", int()),
        ("bridge", int()),
        ("groups", array(array(int(), 4), 3)),
        ("direction", word(&["both", "one-way"])),
        ("state", word(&["durable", "volatile"])),
        ("offset_us", int()),
        ("drift_ppm", int()),
    ]);
    let swarm = table(vec![
        ("faults", int()),
        ("drop-max", float()),
        ("duplicate-max", float()),
    ]);
    let fate = table(vec![
        ("kind", word(&["deliver", "drop", "duplicate"])),
        ("after", duration()),
        ("again", duration()),
    ]);
    let script = table(vec![
        ("latency", duration()),
        (
            "fates",
            array(table(vec![("message", int()), ("fate", fate)]), 4),
        ),
        (
            "coins",
            array(any::<bool>().prop_map(Value::Boolean).boxed(), 4),
        ),
    ]);
    let bounds = table(vec![
        ("events-max", int()),
        ("in-flight-max", int()),
        ("in-flight-bytes-max", int()),
        ("updates-max", int()),
        ("trace-events-kept-max", int()),
        ("update-records-kept-max", int()),
    ]);
    let expect = table(vec![
        (
            "verdict",
            word(&[
                "converges",
                "intent-violated",
                "not-converged",
                "diverges",
                "bound-reached",
            ]),
        ),
        ("converged-by", duration()),
        ("conflicts-min", int()),
    ]);
    table(vec![
        ("name", "[a-z0-9 -]{0,20}".prop_map(Value::String).boxed()),
        ("description", ".{0,30}".prop_map(Value::String).boxed()),
        ("replicas", int()),
        (
            "clock",
            word(&["lamport", "lamport-local-only", "wall", "hybrid"]),
        ),
        ("duration", duration()),
        ("settle", duration()),
        ("crdt", crdt),
        ("protocol", protocol),
        ("network", network),
        ("workload", workload),
        ("faults", array(fault, 4)),
        ("swarm", swarm),
        ("script", script),
        ("bounds", bounds),
        ("expect", expect),
    ])
}

fn small() -> BoxedStrategy<Value> {
    (0i64..6).prop_map(Value::Integer).boxed()
}

fn probability() -> BoxedStrategy<Value> {
    (0.0f64..0.5).prop_map(Value::Float).boxed()
}

fn ms(range: std::ops::Range<u64>) -> BoxedStrategy<Value> {
    range
        .prop_map(|ms| Value::String(format!("{ms}ms")))
        .boxed()
}

fn tagged(
    kind: &'static str,
    fields: Vec<(&'static str, BoxedStrategy<Value>)>,
) -> BoxedStrategy<Value> {
    let mut fields = fields;
    fields.push(("kind", Just(Value::String(kind.to_string())).boxed()));
    // The tag must be there: put it back if the optional field left it out.
    table_exact(fields)
        .prop_map(move |mut value| {
            if let Value::Table(table) = &mut value {
                table.insert("kind".to_string(), Value::String(kind.to_string()));
            }
            value
        })
        .boxed()
}

/// A table with each of `fields` present half the time, and nothing else.
fn table_exact(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let entries: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .into_iter()
        .map(|(key, strategy)| {
            prop::option::of(strategy.prop_map(move |v| (key.to_string(), v))).boxed()
        })
        .collect();
    entries
        .prop_map(|entries| Value::Table(entries.into_iter().flatten().collect()))
        .boxed()
}

fn careful_latency() -> BoxedStrategy<Value> {
    prop_oneof![
        tagged("constant", vec![("value", ms(0..100))]),
        tagged("uniform", vec![("min", ms(0..20)), ("max", ms(20..100))]),
        tagged("exponential", vec![("mean", ms(0..100))]),
        tagged("normal", vec![("mean", ms(0..100)), ("stddev", ms(0..50))]),
        tagged(
            "pareto",
            vec![
                ("scale", ms(1..50)),
                ("shape", (0.5f64..4.0).prop_map(Value::Float).boxed())
            ]
        ),
    ]
    .boxed()
}

fn careful_fault() -> BoxedStrategy<Value> {
    let groups = || array(array(small(), 3), 3);
    prop_oneof![
        tagged(
            "partition",
            vec![
                ("at", ms(0..3_000)),
                ("heal", ms(0..6_000)),
                ("groups", groups()),
                ("direction", word(&["both", "one-way"]))
            ]
        ),
        tagged(
            "isolate",
            vec![
                ("at", ms(0..3_000)),
                ("heal", ms(0..6_000)),
                ("replica", small())
            ]
        ),
        tagged(
            "bridge",
            vec![
                ("at", ms(0..3_000)),
                ("heal", ms(0..6_000)),
                ("groups", groups()),
                ("bridge", small())
            ]
        ),
        tagged(
            "crash",
            vec![
                ("at", ms(0..3_000)),
                ("restart", ms(0..6_000)),
                ("replica", small()),
                ("state", word(&["durable", "volatile"]))
            ]
        ),
        tagged("join", vec![("at", ms(0..3_000)), ("replica", small())]),
        tagged("leave", vec![("at", ms(0..3_000)), ("replica", small())]),
        tagged(
            "clock-skew",
            vec![
                ("replica", small()),
                // As the format spells them (the variant's fields are not kebab-case); the
                // careful generator wrote `offset-us`, so no skew it drew was ever accepted.
                (
                    "offset_us",
                    (-1_000_000i64..1_000_000).prop_map(Value::Integer).boxed()
                ),
                (
                    "drift_ppm",
                    (-1_000i64..1_000).prop_map(Value::Integer).boxed()
                )
            ]
        ),
        tagged(
            "server-outage",
            vec![("at", ms(0..3_000)), ("until", ms(3_000..6_000))]
        ),
        tagged(
            "connection-drop",
            vec![
                ("at", ms(0..3_000)),
                ("nodes", array(small(), 3)),
                ("reconnect", ms(0..6_000))
            ]
        ),
    ]
    .boxed()
}

/// A scenario that is well formed more often than not: the real keys with values of the right
/// type and a sensible size, each tagged table with its own variant's keys. Validation still
/// refuses some (a fault naming a replica that does not exist), which is fine.
fn careful_scenario_tree() -> BoxedStrategy<Value> {
    let crdt = prop_oneof![
        tagged(
            "lww-grid",
            vec![
                ("rows", (1i64..5).prop_map(Value::Integer).boxed()),
                ("cols", (1i64..5).prop_map(Value::Integer).boxed()),
                ("tie-break", word(&["peer-id", "random", "keep-local"]))
            ]
        ),
        tagged(
            "lww-dict",
            vec![
                ("bias", word(&["add", "remove"])),
                ("tie-break", word(&["peer-id", "random", "keep-local"]))
            ]
        ),
    ]
    .boxed();
    let protocol = table_exact(vec![
        (
            "kind",
            word(&[
                "state-broadcast",
                "anti-entropy",
                "op-broadcast",
                "reliable-causal",
                "delta-sync",
                "merkle-anti-entropy",
                "op-stream",
            ]),
        ),
        ("topology", word(&["mesh", "relay", "gossip"])),
        ("fanout", (1i64..4).prop_map(Value::Integer).boxed()),
        ("interval", ms(50..1_000)),
        ("anti-entropy", ms(50..1_000)),
        (
            "snapshot-on-join",
            any::<bool>().prop_map(Value::Boolean).boxed(),
        ),
        ("retransmit-timeout", ms(10..500)),
        ("retransmit-max", small()),
        ("delta-position", word(&["log-position", "version-vector"])),
        (
            "on-reconnect",
            word(&["handshake", "keep-position", "echo-handshake"]),
        ),
    ]);
    let link = table_exact(vec![
        ("from", small()),
        ("to", small()),
        ("drop", probability()),
        ("duplicate", probability()),
        ("latency", careful_latency()),
    ]);
    let network = table_exact(vec![
        ("latency", careful_latency()),
        ("drop", probability()),
        ("duplicate", probability()),
        ("links", array(link, 3)),
        ("settle-drop", word(&["none", "as-configured"])),
        ("in-order", any::<bool>().prop_map(Value::Boolean).boxed()),
    ]);
    let op = table_exact(vec![
        ("at", ms(0..3_000)),
        ("replica", small()),
        ("key", small()),
        ("value", small()),
    ])
    .prop_map(|mut value| {
        if let Value::Table(table) = &mut value {
            for key in ["at", "replica", "key"] {
                table.entry(key).or_insert(Value::Integer(0));
            }
            if let Some(Value::Integer(_)) = table.get("at") {
                table.insert("at".to_string(), Value::String("1s".to_string()));
            }
        }
        value
    })
    .boxed();
    let workload = table_exact(vec![
        ("rate", (0.0f64..5.0).prop_map(Value::Float).boxed()),
        ("keys", (1i64..10).prop_map(Value::Integer).boxed()),
        ("values", (1i64..10).prop_map(Value::Integer).boxed()),
        ("remove-ratio", probability()),
        ("stop", ms(0..3_000)),
        ("ops", array(op, 5)),
    ]);
    let swarm = table_exact(vec![
        ("faults", small()),
        ("drop-max", probability()),
        ("duplicate-max", probability()),
    ]);
    table_exact(vec![
        ("name", "[a-z0-9-]{1,12}".prop_map(Value::String).boxed()),
        ("replicas", (1i64..6).prop_map(Value::Integer).boxed()),
        (
            "clock",
            word(&["lamport", "lamport-local-only", "wall", "hybrid"]),
        ),
        ("duration", ms(0..3_000)),
        ("settle", ms(0..3_000)),
        ("crdt", crdt),
        ("protocol", protocol),
        ("network", network),
        ("workload", workload),
        ("faults", array(careful_fault(), 4)),
        ("swarm", swarm),
    ])
}

/// A TOML value as JSON, for the same tree in the other format.
fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::String(s) => s.clone().into(),
        Value::Integer(i) => (*i).into(),
        Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
        }
        Value::Boolean(b) => (*b).into(),
        Value::Datetime(d) => d.to_string().into(),
        Value::Array(items) => items.iter().map(to_json).collect(),
        Value::Table(table) => table
            .iter()
            .map(|(k, v)| (k.clone(), to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

#[test]
fn scenario_shaped_trees_are_refused_clearly_or_run() {
    let tally = Tally::default();
    // Half the trees are careless (wrong types, unknown keys, extreme values), half careful (each
    // tagged table with its own variant's keys), so that many get past the parser and validation
    // and run.
    runner()
        .run(
            &prop_oneof![scenario_tree(), careful_scenario_tree()],
            |tree| {
                // A tree the TOML writer cannot write (none is expected) is skipped, not failed.
                if let Ok(text) = toml::to_string(&tree) {
                    check(&text, Format::Toml, &tally)?;
                }
                let json = serde_json::to_string(&to_json(&tree)).unwrap();
                check(&json, Format::Json, &tally)
            },
        )
        .unwrap();
    tally.print("scenario_shaped_trees_are_refused_clearly_or_run");
}

// ----- the real scenarios, damaged -----

fn scenario_files() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("toml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    files.sort();
    files
}

#[derive(Clone, Debug)]
enum Damage {
    /// Cut the file short at this fraction of its length.
    Truncate(f64),
    /// Replace the byte at this fraction of the length.
    Replace(f64, u8),
    /// Remove a span of up to this many bytes at this fraction.
    Remove(f64, usize),
    /// Repeat a span of the file many times at this fraction.
    Repeat(f64, usize, usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0.0f64..1.0).prop_map(Damage::Truncate),
        (0.0f64..1.0, any::<u8>()).prop_map(|(at, byte)| Damage::Replace(at, byte)),
        (0.0f64..1.0, 1usize..40).prop_map(|(at, len)| Damage::Remove(at, len)),
        (0.0f64..1.0, 1usize..40, 2usize..2_000)
            .prop_map(|(at, len, times)| Damage::Repeat(at, len, times)),
    ]
}

#[test]
fn damaged_scenario_files_are_refused_clearly_or_run() {
    let files = scenario_files();
    assert!(!files.is_empty());
    let tally = Tally::default();
    runner()
        .run(
            &(0..files.len(), prop::collection::vec(damage(), 1..4)),
            |(index, damages)| {
                let mut bytes = files[index].1.clone().into_bytes();
                for damage in damages {
                    let at =
                        |fraction: f64| ((bytes.len() as f64 * fraction) as usize).min(bytes.len());
                    match damage {
                        Damage::Truncate(f) => bytes.truncate(at(f)),
                        Damage::Replace(f, byte) => {
                            let i = at(f);
                            if i < bytes.len() {
                                bytes[i] = byte;
                            }
                        }
                        Damage::Remove(f, len) => {
                            let i = at(f);
                            let end = (i + len).min(bytes.len());
                            bytes.drain(i..end);
                        }
                        Damage::Repeat(f, len, times) => {
                            let i = at(f);
                            let end = (i + len).min(bytes.len());
                            let span = bytes[i..end].to_vec();
                            for _ in 0..times {
                                bytes.splice(i..i, span.iter().copied());
                            }
                        }
                    }
                }
                check(&String::from_utf8_lossy(&bytes), Format::Toml, &tally)
            },
        )
        .unwrap();
    tally.print("damaged_scenario_files_are_refused_clearly_or_run");
}

/// Every key of the scenario format, as dotted paths (`network.latency.kind`), from a value of it.
fn json_key_paths(value: &serde_json::Value, prefix: &str, paths: &mut Vec<String>) {
    if let serde_json::Value::Object(map) = value {
        for (key, child) in map {
            let path = format!("{prefix}{key}");
            json_key_paths(child, &format!("{path}."), paths);
            paths.push(path);
        }
    }
}

fn toml_key_paths(value: &Value, prefix: &str, paths: &mut std::collections::BTreeSet<String>) {
    match value {
        Value::Table(table) => {
            for (key, child) in table {
                let path = format!("{prefix}{key}");
                toml_key_paths(child, &format!("{path}."), paths);
                paths.insert(path);
            }
        }
        Value::Array(items) => {
            for item in items {
                toml_key_paths(item, prefix, paths);
            }
        }
        _ => {}
    }
}

/// The scenario-shaped generator lists the format's keys by hand; a key added to the format and
/// not to the generator would never be fuzzed. Every key of a default scenario (as reports write
/// it) must turn up in the generator's trees.
#[test]
fn the_scenario_generator_knows_every_key() {
    let mut expected = Vec::new();
    let default = serde_json::to_value(converge::netsim::Scenario::default()).expect("serializes");
    json_key_paths(&default, "", &mut expected);
    let mut generated = std::collections::BTreeSet::new();
    let mut runner = TestRunner::deterministic();
    let strategy = scenario_tree();
    for _ in 0..3_000 {
        let tree = strategy.new_tree(&mut runner).expect("a tree");
        toml_key_paths(&tree.current(), "", &mut generated);
    }
    let missing: Vec<&String> = expected
        .iter()
        .filter(|p| !generated.contains(*p))
        .collect();
    assert!(
        missing.is_empty(),
        "keys the fuzzer never generates: {missing:?}"
    );
}

// ----- fault plans: relations between keys -----

/// One fault of a plan, in the test's own terms: kind, replica, start and end in tenths of a
/// second (times come from a handful of values, so that equal, crossing and nested times are
/// common).
#[derive(Clone, Debug)]
struct PlannedFault {
    kind: &'static str,
    replica: u32,
    at: u64,
    end: Option<u64>,
}

/// The run lasts 3 s: times run past it, so that faults after `duration` are drawn too.
const PLAN_DURATION_TENTHS: u64 = 30;

fn planned_fault(replicas: u32) -> BoxedStrategy<PlannedFault> {
    let times = prop::sample::select(vec![0u64, 5, 10, 15, 20, 30, 35]);
    (
        prop::sample::select(vec![
            "join",
            "leave",
            "crash",
            "server-outage",
            "partition",
            "isolate",
            "clock-skew",
            "write",
        ]),
        0..replicas,
        times.clone(),
        prop::option::of(times),
    )
        .prop_map(|(kind, replica, at, end)| PlannedFault {
            kind,
            replica,
            at,
            // Server outages always have an end; joins, leaves and skews never do.
            end: match kind {
                "server-outage" => Some(end.unwrap_or(at + 5)),
                "join" | "leave" | "clock-skew" | "write" => None,
                _ => end,
            },
        })
        .boxed()
}

/// A plan: replicas, topology, faults.
fn fault_plan() -> BoxedStrategy<(u32, bool, Vec<PlannedFault>)> {
    (2u32..5, any::<bool>())
        .prop_flat_map(|(replicas, relay)| {
            (
                Just(replicas),
                Just(relay),
                prop::collection::vec(planned_fault(replicas), 0..7),
            )
        })
        .boxed()
}

/// The plan as a scenario file.
fn plan_toml(replicas: u32, relay: bool, faults: &[PlannedFault]) -> String {
    let mut text = format!(
        "replicas = {replicas}\nduration = \"{}ms\"\nsettle = \"1s\"\n[protocol]\ntopology = \"{}\"\n",
        PLAN_DURATION_TENTHS * 100,
        if relay { "relay" } else { "mesh" }
    );
    let ms = |tenths: u64| format!("\"{}ms\"", tenths * 100);
    // Explicit writes at the plan's times; the generated ones (rate 2) write as well.
    let writes: Vec<String> = faults
        .iter()
        .filter(|f| f.kind == "write")
        .map(|f| {
            format!(
                "{{ at = {}, replica = {}, key = 0, value = 1 }}",
                ms(f.at),
                f.replica
            )
        })
        .collect();
    text.push_str(&format!("[workload]\nops = [{}]\n", writes.join(", ")));
    for fault in faults.iter().filter(|f| f.kind != "write") {
        text.push_str(&format!("[[faults]]\nkind = \"{}\"\n", fault.kind));
        let end_key = match fault.kind {
            "crash" => "restart",
            "server-outage" => "until",
            _ => "heal",
        };
        if fault.kind != "clock-skew" {
            text.push_str(&format!("at = {}\n", ms(fault.at)));
        }
        if let Some(end) = fault.end {
            text.push_str(&format!("{end_key} = {}\n", ms(end)));
        }
        match fault.kind {
            "partition" => text.push_str(&format!("groups = [[{}]]\n", fault.replica)),
            "server-outage" => {}
            "clock-skew" => text.push_str(&format!("replica = {}\noffset_us = 5\n", fault.replica)),
            _ => text.push_str(&format!("replica = {}\n", fault.replica)),
        }
    }
    text
}

/// Whether the plan makes sense, worked out here on its own terms (not with validation's code):
/// every time within the run, every end after its start, a server outage only with a relay, per
/// replica at most one join, leave and skew, the leave after the join, crashes after the join and
/// before the leave (restarts too), no two crashes of one replica and no two outages that
/// overlap.
fn plan_makes_sense(relay: bool, faults: &[PlannedFault]) -> bool {
    let timed = |f: &PlannedFault| f.kind != "clock-skew";
    // Explicit writes come from running replicas: after the join (a write at the join's instant
    // comes before it), not during a crash (after its start, up to and including its restart),
    // not after the leave.
    for write in faults.iter().filter(|f| f.kind == "write") {
        let of_replica = |kind: &'static str| {
            faults
                .iter()
                .filter(move |f| f.kind == kind && f.replica == write.replica)
        };
        if of_replica("join").any(|join| write.at <= join.at)
            || of_replica("leave").any(|leave| write.at > leave.at)
            || of_replica("crash")
                .any(|crash| write.at > crash.at && crash.end.is_none_or(|end| write.at <= end))
        {
            return false;
        }
    }
    if faults
        .iter()
        .filter(|f| timed(f))
        .any(|f| f.at > PLAN_DURATION_TENTHS)
    {
        return false;
    }
    if faults.iter().any(|f| f.end.is_some_and(|end| end <= f.at)) {
        return false;
    }
    if !relay && faults.iter().any(|f| f.kind == "server-outage") {
        return false;
    }
    let of = |kind: &str, replica: u32| -> Vec<&PlannedFault> {
        faults
            .iter()
            .filter(|f| f.kind == kind && f.replica == replica)
            .collect()
    };
    let overlap = |a: &PlannedFault, b: &PlannedFault| {
        let (first, second) = if a.at <= b.at { (a, b) } else { (b, a) };
        first.end.is_none_or(|end| second.at <= end)
    };
    for replica in 0..5 {
        let (joins, leaves, skews) = (
            of("join", replica),
            of("leave", replica),
            of("clock-skew", replica),
        );
        if joins.len() > 1 || leaves.len() > 1 || skews.len() > 1 {
            return false;
        }
        if let (Some(join), Some(leave)) = (joins.first(), leaves.first()) {
            if leave.at <= join.at {
                return false;
            }
        }
        let crashes = of("crash", replica);
        for crash in &crashes {
            if joins.first().is_some_and(|join| crash.at <= join.at) {
                return false;
            }
            if let Some(leave) = leaves.first() {
                if crash.at >= leave.at || crash.end.is_some_and(|end| end >= leave.at) {
                    return false;
                }
            }
        }
        for (i, a) in crashes.iter().enumerate() {
            if crashes[i + 1..].iter().any(|b| overlap(a, b)) {
                return false;
            }
        }
    }
    let outages: Vec<&PlannedFault> = faults
        .iter()
        .filter(|f| f.kind == "server-outage")
        .collect();
    for (i, a) in outages.iter().enumerate() {
        if outages[i + 1..].iter().any(|b| overlap(a, b)) {
            return false;
        }
    }
    true
}

#[test]
fn fault_plans_are_accepted_exactly_when_they_make_sense() {
    let tally = Tally::default();
    runner()
        .run(&fault_plan(), |(replicas, relay, faults)| {
            let text = plan_toml(replicas, relay, &faults);
            let verdict = parse_and_validate(&text, Format::Toml, "plan.toml");
            let sensible = plan_makes_sense(relay, &faults);
            match &verdict {
                Ok(_) => prop_assert!(sensible, "accepted a plan that makes no sense:\n{text}"),
                Err(error) => {
                    prop_assert!(!sensible, "refused a sensible plan ({error}):\n{text}");
                    let message = error.to_string();
                    prop_assert!(
                        message.contains("key `faults[") || message.contains("key `workload.ops["),
                        "a refusal names the fault or the write: {message}"
                    );
                }
            }
            // And the same properties as every other generator: clear refusals, runs that end.
            check(&text, Format::Toml, &tally)
        })
        .unwrap();
    tally.print("fault_plans_are_accepted_exactly_when_they_make_sense");
}
