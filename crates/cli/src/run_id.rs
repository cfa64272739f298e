//! Run ids: a short name for "this version of converge, this scenario, these seeds", so that a
//! report can say which run it is and a new run never silently replaces a different run's report.
//!
//! A run id is 16 hex digits of a fixed 64-bit hash (FNV-1a, then splitmix64's finalizer) over the
//! converge version, the scenario's content and the seeds. The content is the scenario as parsed
//! (its canonical JSON), not the file's bytes, so that a comment or a reordered key does not make a
//! different run, while any change that can change the result does. Like the trace hash, it is the
//! same on every machine and for any `--jobs`.

use converge_netsim::{mix64, Scenario};

use crate::sweep::{SeedRange, Shard};

/// The version that goes into every run id: a new version may simulate differently, so its reports
/// are a different run.
pub const CONVERGE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// FNV-1a over bytes, finished with a mixer so that nearby inputs give unrelated ids.
fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(hash)
}

/// The hash of a scenario's content: its canonical JSON (fields in declaration order).
pub fn scenario_hash(scenario: &Scenario) -> u64 {
    // Serializing plain data to a Vec cannot fail; an empty encoding would still hash.
    hash_bytes(&serde_json::to_vec(scenario).unwrap_or_default())
}

fn run_id_of(kind: &str, scenario: &Scenario, seeds: &str) -> String {
    run_id_of_hashed(kind, scenario_hash(scenario), seeds)
}

fn run_id_of_hashed(kind: &str, scenario_hash: u64, seeds: &str) -> String {
    let key =
        format!("converge {CONVERGE_VERSION}\n{kind}\nscenario {scenario_hash:016x}\n{seeds}");
    format!("{:016x}", hash_bytes(key.as_bytes()))
}

/// The id of one run: one scenario, one seed. A sweep's failing seeds get the same id as
/// `converge run` of that seed, because they are the same run.
pub fn run_id_of_run(scenario: &Scenario, seed: u64) -> String {
    run_id_of("run", scenario, &format!("seed {seed}"))
}

/// [`run_id_of_run`] for many seeds of one scenario, which is serialized and hashed once (a merge
/// checks the run id of every seed of a sweep, up to a million).
pub fn run_ids_of_runs(scenario: &Scenario) -> impl Fn(u64) -> String {
    let hash = scenario_hash(scenario);
    move |seed| run_id_of_hashed("run", hash, &format!("seed {seed}"))
}

/// The id of a sweep (or one shard of it).
pub fn run_id_of_sweep(scenario: &Scenario, seeds: SeedRange, shard: Option<Shard>) -> String {
    let shard = shard.map_or("all".to_string(), |s| format!("{}/{}", s.index, s.count));
    run_id_of(
        "sweep",
        scenario,
        &format!("seeds {}..{} shard {shard}", seeds.start, seeds.end),
    )
}

/// The id of a merge of shard results: the shards it covers, of how many.
pub fn run_id_of_merge(
    scenario: &Scenario,
    seeds: SeedRange,
    shard_count: u64,
    shards: &[u64],
) -> String {
    let shards: Vec<String> = shards.iter().map(u64::to_string).collect();
    run_id_of(
        "merge",
        scenario,
        &format!(
            "seeds {}..{} shards {} of {shard_count}",
            seeds.start,
            seeds.end,
            shards.join(",")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_change_with_the_scenario_and_the_seeds_only() {
        let scenario = Scenario::default();
        let id = run_id_of_run(&scenario, 7);
        assert_eq!(id.len(), 16);
        assert_eq!(id, run_id_of_run(&scenario.clone(), 7));
        assert_ne!(id, run_id_of_run(&scenario, 8));
        let other = Scenario {
            replicas: 4,
            ..Scenario::default()
        };
        assert_ne!(id, run_id_of_run(&other, 7));
        assert_eq!(
            run_ids_of_runs(&scenario)(7),
            id,
            "the same id, hashed once"
        );
        let range = SeedRange { start: 0, end: 10 };
        let shard = Shard { index: 1, count: 2 };
        assert_ne!(
            run_id_of_sweep(&scenario, range, None),
            run_id_of_sweep(&scenario, range, Some(shard))
        );
        assert_ne!(
            run_id_of_merge(&scenario, range, 2, &[1]),
            run_id_of_merge(&scenario, range, 2, &[1, 2])
        );
    }
}
