//! Determinism, pinned: the trace hash of every scenario in `scenarios/` at seeds 0, 1 and 12345
//! is checked in (`tests/golden-trace-hashes.toml`). A run is a pure function of (scenario, seed),
//! so a hash changes only when the simulator's behaviour (or the trace's encoding) changes. That
//! may be on purpose; then the file is regenerated, with the reason, by
//!
//! ```sh
//! CONVERGE_BLESS=1 CONVERGE_BLESS_REASON="why the traces changed" cargo test -p converge --test golden
//! ```
//!
//! and the commit says why. An optimisation of the simulator must leave every hash as it is.
//! Without oracles attached, all of them run in well under a second in a test build, the stress
//! scenarios included, so every scenario is pinned at every seed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use converge::netsim::Replicas;
use converge::netsim::{run, BuiltinCrdt, CrdtVisitor, NoObserver, Scenario};
use converge::scenario_file;
use serde::{Deserialize, Serialize};

mod common;
use common::scenarios_dir;

/// The environment variable that rewrites the pinned hashes instead of comparing them.
const BLESS_VARIABLE: &str = "CONVERGE_BLESS";
/// The reason for a deliberate change, written into the file when blessing.
const BLESS_REASON_VARIABLE: &str = "CONVERGE_BLESS_REASON";

/// Seeds pinned for every scenario.
const SEEDS: [u64; 3] = [0, 1, 12_345];

#[derive(Debug, Serialize, Deserialize)]
struct GoldenFile {
    /// Why the hashes last changed on purpose.
    reason: String,
    pins: Vec<Pin>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Pin {
    scenario: String,
    seed: u64,
    trace_hash: String,
}

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden-trace-hashes.toml")
}

/// The trace hash of one run. No observer is attached: observers never change a run, and the
/// oracles would only slow the test down.
fn trace_hash(scenario: &Scenario, seed: u64) -> String {
    struct TraceHash<'a>(&'a Scenario, u64);
    impl CrdtVisitor for TraceHash<'_> {
        type Output = u64;
        fn visit<C: BuiltinCrdt>(self, make: impl Replicas<C> + Copy) -> u64 {
            run(self.0, self.1, &make, &mut NoObserver)
                .expect("every scenario in scenarios/ is valid")
                .trace_hash
        }
    }
    format!("{:016x}", scenario.crdt.dispatch(TraceHash(scenario, seed)))
}

/// Every pin, computed from the scenarios as they are now.
fn computed_pins() -> Vec<Pin> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .expect("scenarios/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("toml"))
        .collect();
    files.sort();
    let mut pins = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let scenario = scenario_file::load(&file).unwrap_or_else(|e| panic!("{e}"));
        for seed in SEEDS {
            pins.push(Pin {
                scenario: name.clone(),
                seed,
                trace_hash: trace_hash(&scenario, seed),
            });
        }
    }
    pins
}

fn bless(pins: Vec<Pin>) {
    let reason = std::env::var(BLESS_REASON_VARIABLE).unwrap_or_else(|_| {
        panic!(
            "{BLESS_VARIABLE}=1 rewrites the pinned trace hashes; say why in \
             {BLESS_REASON_VARIABLE}=\"...\" (it is written into the file, and the commit must \
             say it too)"
        )
    });
    let file = GoldenFile { reason, pins };
    let text = format!(
        "# Trace hashes pinned by tests/golden.rs: every scenario of scenarios/ at seeds 0, 1 and \
         12345.\n# Regenerate only on purpose, with the reason:\n\
         #   {BLESS_VARIABLE}=1 {BLESS_REASON_VARIABLE}=\"...\" cargo test -p converge --test golden\n{}",
        toml::to_string(&file).expect("the pins render as TOML")
    );
    std::fs::write(golden_path(), text).expect("the golden file is writable");
    eprintln!("wrote {}", golden_path().display());
}

#[test]
fn trace_hashes_match_the_pinned_ones() {
    let computed = computed_pins();
    if std::env::var(BLESS_VARIABLE).is_ok_and(|v| v == "1") {
        bless(computed);
        return;
    }
    let text = std::fs::read_to_string(golden_path()).expect("the golden file exists");
    let golden: GoldenFile = toml::from_str(&text).expect("the golden file parses");
    let pinned: BTreeMap<(String, u64), String> = golden
        .pins
        .iter()
        .map(|p| ((p.scenario.clone(), p.seed), p.trace_hash.clone()))
        .collect();
    let now: BTreeMap<(String, u64), String> = computed
        .iter()
        .map(|p| ((p.scenario.clone(), p.seed), p.trace_hash.clone()))
        .collect();
    let mut problems: Vec<String> = Vec::new();
    for ((scenario, seed), hash) in &now {
        match pinned.get(&(scenario.clone(), *seed)) {
            Some(pinned) if pinned == hash => {}
            Some(pinned) => problems.push(format!(
                "{scenario} seed {seed}: trace hash {hash}, pinned {pinned}"
            )),
            None => problems.push(format!(
                "{scenario} seed {seed}: trace hash {hash}, not pinned (a new scenario?)"
            )),
        }
    }
    for (scenario, seed) in pinned.keys() {
        if !now.contains_key(&(scenario.clone(), *seed)) {
            problems.push(format!(
                "{scenario} seed {seed}: pinned, but the scenario is gone"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the trace hashes differ from tests/golden-trace-hashes.toml (last deliberate change: \
         {:?}):\n  {}\n\nSame scenario and seed must give the same trace. If the simulator's \
         behaviour changed on purpose, regenerate the pins with\n  \
         {BLESS_VARIABLE}=1 {BLESS_REASON_VARIABLE}=\"why\" cargo test -p converge --test golden\n\
         and state the reason in the commit message. If it did not (an optimisation, a refactor), \
         the change broke determinism or behaviour: find out why before blessing.",
        golden.reason,
        problems.join("\n  ")
    );
}
