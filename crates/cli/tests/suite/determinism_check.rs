//! The determinism self-check: every built-in configuration is deterministic, and a user type
//! whose merge depends on hash-map iteration order is caught, naming the seed.

use std::collections::HashMap;

use converge::crdt::{Coin, Intent, LwwGrid, LwwGridConfig, OpCrdt, Stamp, StateCrdt};
use converge::netsim::{Scenario, SimDuration};
use converge::verify::Verify;

/// A register that keeps every written value with its time and shows the first value of the
/// latest time *in its hash map's iteration order*: the bug of a merge that iterates a HashMap.
#[derive(Clone, Debug, Default)]
struct HashOrderRegister {
    candidates: HashMap<u64, u64>,
}

impl PartialEq for HashOrderRegister {
    fn eq(&self, other: &Self) -> bool {
        self.candidates == other.candidates
    }
}

impl StateCrdt for HashOrderRegister {
    type View = Option<u64>;

    fn merge(&mut self, other: &Self, _coin: &mut dyn Coin) {
        for (value, time) in &other.candidates {
            let kept = self.candidates.entry(*value).or_insert(*time);
            *kept = (*kept).max(*time);
        }
    }

    fn view(&self) -> Option<u64> {
        let latest = self.candidates.values().copied().max()?;
        self.candidates
            .iter()
            .find(|(_, time)| **time == latest)
            .map(|(value, _)| *value)
    }

    fn time_max(&self) -> u64 {
        self.candidates.values().copied().max().unwrap_or(0)
    }
}

impl OpCrdt for HashOrderRegister {
    type Intent = Intent;
    type Op = (u64, u64);

    fn prepare(&self, intent: &Intent, stamp: Stamp) -> (u64, u64) {
        match *intent {
            Intent::Put { value, .. } => (value, stamp.time),
            Intent::Remove { .. } => (0, stamp.time),
        }
    }

    fn apply(&mut self, op: &(u64, u64), _coin: &mut dyn Coin) {
        let kept = self.candidates.entry(op.0).or_insert(op.1);
        *kept = (*kept).max(op.1);
    }
}

/// Four replicas writing one key often: equal times are common.
fn contended() -> Scenario {
    let mut scenario = Scenario {
        name: "contended".into(),
        replicas: 4,
        duration: SimDuration::from_secs(2),
        settle: SimDuration::from_secs(1),
        ..Scenario::default()
    };
    scenario.workload.rate = 10.0;
    scenario.workload.keys = 1;
    scenario
}

#[test]
fn a_merge_that_depends_on_hash_map_order_is_caught() {
    let found = Verify::new(contended(), |_| HashOrderRegister::default())
        .seeds(0..20)
        .determinism()
        .expect("valid")
        .expect_err("hash-map order differs between runs");
    assert!(found.seed < 20);
    assert!(found.detail.contains("different states"), "{found}");
    assert!(found
        .to_string()
        .starts_with(&format!("seed {} is not deterministic", found.seed)));
}

#[test]
fn the_built_in_grid_is_deterministic() {
    let checked = Verify::new(contended(), |_| LwwGrid::new(LwwGridConfig::default()))
        .seeds(0..20)
        .assert_deterministic();
    assert_eq!(checked, 20);
}

#[test]
fn converge_run_checks_determinism_when_asked() {
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/01-grid-random-tiebreak.toml"
    );
    let out = std::env::temp_dir().join(format!("converge-determinism-{}", std::process::id()));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_converge"))
        .args([
            "run",
            scenario,
            "--check-determinism",
            "--no-shrink",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("converge runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The random tie-break story diverges as expected, and does so the same way twice.
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let _ = std::fs::remove_dir_all(&out);
}
