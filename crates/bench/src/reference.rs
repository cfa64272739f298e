//! The reference scenario and the bare loop that bounds what simulating it could cost.
//!
//! The reference scenario is the workload every simulator number in this crate is quoted on: a 3x3
//! LWW grid (peer-id ties, Lamport stamps) on 5 replicas, state broadcast over a full mesh plus
//! anti-entropy every second to 2 random peers, 5% loss, uniform 10-50 ms latency, 10 writes per
//! second per replica, 60 s of virtual time and no settle period.
//!
//! The bare loop does the CRDT work of a run and nothing else: the same number of op applications
//! and state merges on five grids, with one state snapshot cloned per broadcast, but no queue, no
//! network, no trace and no oracle. It is the practical ceiling: a simulator can only approach it.

use converge_checker::{judge, Judged};
use converge_crdt::{
    FixedCoin, Intent, LwwGrid, LwwGridConfig, OpCrdt, ReplicaId, Stamp, StateCrdt,
};
use converge_netsim::{
    run, NoObserver, Outcome, ProtocolKind, Scenario, ScenarioError, SimDuration, Topology,
};

/// The reference scenario. See the module docs.
pub fn reference_scenario() -> Scenario {
    let mut scenario = Scenario {
        name: "reference".into(),
        description: "3x3 LWW grid, 5 replicas, state broadcast on a mesh plus anti-entropy every \
                      second, 5% loss, 60 s virtual"
            .into(),
        replicas: 5,
        duration: SimDuration::from_secs(60),
        settle: SimDuration::ZERO,
        ..Scenario::default()
    };
    scenario.protocol.kind = ProtocolKind::StateBroadcast;
    scenario.protocol.topology = Topology::Mesh;
    scenario.protocol.anti_entropy = Some(SimDuration::from_secs(1));
    scenario.protocol.fanout = 2;
    scenario.network.drop = 0.05;
    scenario.workload.rate = 10.0;
    scenario
}

/// An empty grid of the reference shape, for any replica.
pub fn grid(_: ReplicaId) -> LwwGrid {
    LwwGrid::new(LwwGridConfig::default())
}

/// One run with no observer: the simulator alone.
pub fn simulate(scenario: &Scenario, seed: u64) -> Result<Outcome<LwwGrid>, ScenarioError> {
    run(scenario, seed, &grid, &mut NoObserver)
}

/// One run with every oracle on, the way `converge run` judges it: strong convergence and the
/// convergence timeline watch every event, eventual convergence and intent judge the end.
pub fn simulate_judged(scenario: &Scenario, seed: u64) -> Result<Judged<LwwGrid>, ScenarioError> {
    judge(scenario, seed, &grid)
}

/// The work a run does, counted from its outcome: writes applied at their origin, and state
/// merges (every delivered message carries a state in the reference scenario).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Work {
    pub writes: u64,
    pub merges: u64,
}

impl Work {
    pub fn of(outcome: &Outcome<LwwGrid>) -> Work {
        Work {
            writes: outcome.updates_issued,
            merges: outcome.messages.delivered,
        }
    }
}

/// The same number of op applications and state merges on `replicas` grids, with one state
/// snapshot cloned per broadcast, and nothing else. Returns a value that depends on every merge,
/// so that the optimizer cannot drop any of them.
pub fn bare_loop(work: Work, replicas: u32) -> u64 {
    assert!(replicas >= 2, "the bare loop needs a peer to merge into");
    let mut states: Vec<LwwGrid> = (0..replicas).map(grid).collect();
    let coin = &mut FixedCoin(false);
    let fan_out = (work.merges / work.writes.max(1)).max(1);
    let mut merges_left = work.merges;
    let mut time = 0u64;
    for write in 0..work.writes {
        let origin = (write % u64::from(replicas)) as usize;
        time += 1;
        let intent = Intent::Put {
            key: (write.wrapping_mul(0x9e37_79b9) % 9) as u32,
            value: write,
        };
        let op = states[origin].prepare(&intent, Stamp::new(time, origin as ReplicaId));
        states[origin].apply(&op, coin);
        let snapshot = states[origin].clone();
        // The last write takes whatever merges are left, so that the totals match exactly.
        let last = write + 1 == work.writes;
        let count = if last {
            merges_left
        } else {
            fan_out.min(merges_left)
        };
        for k in 0..count {
            let to = (origin + 1 + (k as usize % (replicas as usize - 1))) % replicas as usize;
            states[to].merge(&snapshot, coin);
        }
        merges_left -= count;
    }
    states.iter().map(|s| s.time_max()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_scenario_is_valid_and_lossy() {
        let scenario = reference_scenario();
        scenario.validate().expect("valid");
        assert_eq!(scenario.replicas, 5);
        assert_eq!(scenario.network.drop, 0.05);
        assert_eq!(scenario.duration, SimDuration::from_secs(60));
    }

    #[test]
    fn the_bare_loop_does_every_write() {
        let work = Work {
            writes: 10,
            merges: 37,
        };
        // Writes take times 1..=10 in turn; every replica ends up holding one of them.
        let total = bare_loop(work, 5);
        assert!(total > 0 && total <= 50, "{total}");
    }
}
