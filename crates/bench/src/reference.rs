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
//!
//! The skeleton loop is the least a discrete-event simulator of the same workload does: an event
//! queue in (time, sequence) order, a seeded ChaCha stream for write gaps, losses, latencies and
//! anti-entropy peers, one shared snapshot per broadcast, and the merges; no trace, no faults, no
//! delivered-update sets, no clocks beyond the stamps, no observer. How far it stays from the bare
//! loop is what simulating costs at all, before anything converge adds.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::rc::Rc;

use converge_checker::{judge, Judged};
use converge_crdt::{
    FixedCoin, Intent, LwwGrid, LwwGridConfig, OpCrdt, ReplicaId, Stamp, StateCrdt,
};
use converge_netsim::{
    run, NoObserver, Outcome, ProtocolKind, Scenario, ScenarioError, SimDuration, Topology,
};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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

/// What a skeleton run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkeletonRun {
    pub work: Work,
    /// Writes, sends, deliveries, losses and anti-entropy timers, as the simulator counts events.
    pub events: u64,
    /// Depends on every merge, so that the optimizer cannot drop any.
    pub checksum: u64,
}

/// One scheduled skeleton event.
enum SkeletonEvent {
    Write { replica: usize },
    AntiEntropy { replica: usize },
    Deliver { to: usize, state: Rc<LwwGrid> },
}

struct SkeletonQueued {
    at_us: u64,
    seq: u64,
    event: SkeletonEvent,
}

impl PartialEq for SkeletonQueued {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.seq) == (other.at_us, other.seq)
    }
}
impl Eq for SkeletonQueued {}
impl PartialOrd for SkeletonQueued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SkeletonQueued {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at_us, self.seq).cmp(&(other.at_us, other.seq))
    }
}

/// The skeleton's queue and random stream.
struct Skeleton<'a> {
    scenario: &'a Scenario,
    /// The uniform latency's bounds, read from the scenario once.
    latency_min_us: u64,
    latency_span_us: u64,
    rng: ChaCha8Rng,
    queue: BinaryHeap<Reverse<SkeletonQueued>>,
    seq: u64,
    run: SkeletonRun,
    /// Snapshots no message refers to any more, written over instead of allocated: as frugal as
    /// converge's own state copies.
    spare: Vec<Rc<LwwGrid>>,
}

impl Skeleton<'_> {
    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn write_gap_us(&mut self) -> u64 {
        let mean_us = 1e6 / self.scenario.workload.rate;
        (-mean_us * (1.0 - self.unit()).ln()) as u64 + 1
    }

    fn schedule(&mut self, at_us: u64, event: SkeletonEvent) {
        self.queue.push(Reverse(SkeletonQueued {
            at_us,
            seq: self.seq,
            event,
        }));
        self.seq += 1;
    }

    /// A shared copy of `state`, written over a spare one when there is one.
    fn snapshot(&mut self, state: &LwwGrid) -> Rc<LwwGrid> {
        match self.spare.pop() {
            Some(mut spare) => {
                Rc::get_mut(&mut spare)
                    .expect("spares are unshared")
                    .clone_from(state);
                spare
            }
            None => Rc::new(state.clone()),
        }
    }

    /// Keeps a delivered snapshot nothing else refers to for the next broadcast.
    fn recycle(&mut self, state: Rc<LwwGrid>) {
        if Rc::strong_count(&state) == 1 && self.spare.len() < 64 {
            self.spare.push(state);
        }
    }

    fn send(&mut self, now_us: u64, to: usize, state: &Rc<LwwGrid>) {
        self.run.events += 1;
        if self.unit() < self.scenario.network.drop {
            self.run.events += 1;
            return;
        }
        let latency = self.latency_min_us + (self.unit() * self.latency_span_us as f64) as u64;
        let state = Rc::clone(state);
        self.schedule(now_us + latency, SkeletonEvent::Deliver { to, state });
    }
}

/// The reference workload on the skeleton simulator (see the module docs): `scenario` gives the
/// replicas, write rate, duration, loss, latency and anti-entropy of a state-broadcast run.
///
/// # Panics
/// If the scenario is not of that shape (uniform latency, anti-entropy, two replicas or more).
pub fn skeleton_loop(scenario: &Scenario, seed: u64) -> SkeletonRun {
    let replicas = scenario.replicas as usize;
    assert!(replicas >= 2, "the skeleton loop needs a peer to send to");
    let interval_us = scenario
        .protocol
        .anti_entropy
        .expect("the reference scenario runs anti-entropy")
        .us;
    let converge_netsim::Latency::Uniform { min, max } = scenario.network.latency else {
        panic!("the skeleton loop draws uniform latencies only");
    };
    let mut sim = Skeleton {
        scenario,
        latency_min_us: min.us,
        latency_span_us: max.us - min.us,
        rng: ChaCha8Rng::seed_from_u64(seed),
        queue: BinaryHeap::new(),
        seq: 0,
        run: SkeletonRun::default(),
        spare: Vec::new(),
    };
    let mut states: Vec<LwwGrid> = (0..replicas).map(|r| grid(r as ReplicaId)).collect();
    let mut clocks = vec![0u64; replicas];
    let coin = &mut FixedCoin(false);
    for replica in 0..replicas {
        let gap = sim.write_gap_us();
        sim.schedule(gap, SkeletonEvent::Write { replica });
        sim.schedule(interval_us, SkeletonEvent::AntiEntropy { replica });
    }
    while let Some(Reverse(SkeletonQueued { at_us, event, .. })) = sim.queue.pop() {
        if at_us > scenario.duration.us {
            break;
        }
        sim.run.events += 1;
        match event {
            SkeletonEvent::Write { replica } => {
                sim.run.work.writes += 1;
                clocks[replica] += 1;
                let intent = Intent::Put {
                    key: (sim.unit() * 9.0) as u32,
                    value: sim.run.work.writes,
                };
                let stamp = Stamp::new(clocks[replica], replica as ReplicaId);
                let op = states[replica].prepare(&intent, stamp);
                states[replica].apply(&op, coin);
                let snapshot = sim.snapshot(&states[replica]);
                for to in (0..replicas).filter(|to| *to != replica) {
                    sim.send(at_us, to, &snapshot);
                }
                sim.recycle(snapshot);
                let gap = sim.write_gap_us();
                sim.schedule(at_us + gap, SkeletonEvent::Write { replica });
            }
            SkeletonEvent::AntiEntropy { replica } => {
                let snapshot = sim.snapshot(&states[replica]);
                for _ in 0..scenario.protocol.fanout {
                    let peer = (sim.unit() * (replicas - 1) as f64) as usize;
                    let to = if peer >= replica { peer + 1 } else { peer };
                    sim.send(at_us, to, &snapshot);
                }
                sim.recycle(snapshot);
                sim.schedule(at_us + interval_us, SkeletonEvent::AntiEntropy { replica });
            }
            SkeletonEvent::Deliver { to, state } => {
                sim.run.work.merges += 1;
                states[to].merge(&state, coin);
                clocks[to] = clocks[to].max(state.time_max());
                sim.recycle(state);
            }
        }
    }
    sim.run.checksum = states.iter().map(|s| s.time_max()).sum();
    sim.run
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

    /// The skeleton does about the reference run's work: the same writes and merges within a few
    /// percent (its random draws differ), and the same events.
    #[test]
    fn the_skeleton_does_the_reference_work() {
        let scenario = reference_scenario();
        let skeleton = skeleton_loop(&scenario, 1);
        let outcome = simulate(&scenario, 1).expect("valid");
        let work = Work::of(&outcome);
        let close = |a: u64, b: u64| (a as f64 - b as f64).abs() < 0.1 * b as f64;
        assert!(
            close(skeleton.work.writes, work.writes),
            "{skeleton:?} {work:?}"
        );
        assert!(
            close(skeleton.work.merges, work.merges),
            "{skeleton:?} {work:?}"
        );
        assert!(
            close(skeleton.events, outcome.events),
            "{skeleton:?} {}",
            outcome.events
        );
        assert_eq!(skeleton_loop(&scenario, 1), skeleton);
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
