//! The intent oracle applies writes to its sequential specification during the run, as soon as
//! no later write can have a smaller stamp, instead of sorting every update record at the end.
//! Both must give the same specification: this computes it the old way from the records (every
//! record kept) and compares, over runs with crashes, late joins and partitions drawn by swarm
//! mode, for Lamport, hybrid and wall clocks, and checks that writes were applied early where the
//! clocks allow it.

use converge_checker::oracles::IntentWatch;
use std::collections::BTreeSet;

use converge_crdt::{
    ClockKind, Coin, FixedCoin, Intent, LwwDict, LwwDictConfig, LwwGrid, LwwGridConfig, OpCrdt,
    Stamp, StateCrdt, TieBreak,
};
use converge_netsim::{ProtocolKind, Scenario, SimDuration, SwarmSpec};

/// Remembers the order in which it applied writes: the built-in types are last-writer-wins, so
/// the order of distinct stamps does not show in their state, but it does here.
#[derive(Clone, Debug, Default, PartialEq)]
struct ApplyOrder {
    seen: BTreeSet<Stamp>,
    order: Vec<Stamp>,
}

impl StateCrdt for ApplyOrder {
    type View = Vec<(u64, u32)>;

    fn merge(&mut self, other: &Self, _coin: &mut dyn Coin) {
        for stamp in &other.order {
            if self.seen.insert(*stamp) {
                self.order.push(*stamp);
            }
        }
    }

    fn view(&self) -> Self::View {
        self.order.iter().map(|s| (s.time, s.replica)).collect()
    }

    fn time_max(&self) -> u64 {
        self.seen.iter().map(|s| s.time).max().unwrap_or(0)
    }
}

impl OpCrdt for ApplyOrder {
    type Intent = Intent;
    type Op = (u64, u32);

    fn prepare(&self, _intent: &Intent, stamp: Stamp) -> Self::Op {
        (stamp.time, stamp.replica)
    }

    fn apply(&mut self, op: &Self::Op, coin: &mut dyn Coin) {
        let mut single = ApplyOrder::default();
        let stamp = Stamp {
            time: op.0,
            replica: op.1,
        };
        single.seen.insert(stamp);
        single.order.push(stamp);
        self.merge(&single, coin);
    }
}

fn scenario(clock: ClockKind, protocol: ProtocolKind) -> Scenario {
    let mut scenario = Scenario {
        name: "intent-streaming".into(),
        replicas: 5,
        clock,
        swarm: Some(SwarmSpec {
            faults: 4,
            ..SwarmSpec::default()
        }),
        ..Scenario::default()
    };
    scenario.duration = SimDuration::from_secs(30);
    scenario.settle = SimDuration::from_secs(5);
    scenario.protocol.kind = protocol;
    scenario.protocol.anti_entropy = Some(SimDuration::from_secs(1));
    scenario.workload.rate = 20.0;
    scenario.bounds.update_records_kept_max = u64::MAX;
    scenario
}

/// Runs `seeds` seeds; returns the writes issued and the writes still waiting at the end of the
/// runs, summed.
fn compare<C: OpCrdt>(scenario: &Scenario, seeds: u64, make: &dyn Fn(u32) -> C) -> (u64, u64) {
    let (mut issued, mut waiting) = (0, 0);
    for seed in 0..seeds {
        let mut watch = IntentWatch::new(&make, scenario.clock);
        let outcome =
            converge_netsim::run(scenario, seed, &make, &mut watch).expect("valid scenario");
        assert_eq!(outcome.updates.len() as u64, outcome.updates_issued);
        issued += outcome.updates_issued;
        waiting += watch.waiting() as u64;
        let streamed = watch.into_sequential().map(|s| s.view());
        let mut ordered: Vec<_> = outcome.updates.iter().collect();
        ordered.sort_by_key(|u| (u.stamp, u.index));
        let sorted = ordered.first().map(|first| {
            let mut sequential = make(first.id.origin);
            for update in &ordered {
                sequential.apply(&update.op, &mut FixedCoin(false));
            }
            sequential.view()
        });
        // Views can be long: say which seed differs rather than print both.
        assert!(
            streamed == sorted,
            "seed {seed}: the specification applied during the run differs from the sorted one"
        );
    }
    (issued, waiting)
}

#[test]
fn writes_applied_during_the_run_give_the_sorted_specification() {
    let grid = |tie_break| {
        move |_| {
            LwwGrid::new(LwwGridConfig {
                tie_break,
                ..LwwGridConfig::default()
            })
        }
    };
    let dict = |_| {
        LwwDict::new(LwwDictConfig {
            tie_break: TieBreak::KeepLocal,
            ..LwwDictConfig::default()
        })
    };
    for clock in [ClockKind::Lamport, ClockKind::Hybrid] {
        let state = scenario(clock, ProtocolKind::StateBroadcast);
        let (issued, waiting) = compare(&state, 6, &grid(TieBreak::Random));
        assert!(
            issued > 10_000,
            "{issued} writes: too few to apply any early"
        );
        assert!(
            waiting < issued / 2,
            "{clock:?}: {waiting} of {issued} writes still waited at the end"
        );
        compare(&scenario(clock, ProtocolKind::OpBroadcast), 4, &dict);
        let (issued, waiting) = compare(&state, 2, &|_| ApplyOrder::default());
        assert!(
            waiting < issued / 2,
            "{clock:?}: {waiting} of {issued} waited"
        );
    }
    // Wall clocks bound nothing: every write waits, and the result is the same.
    let wall = scenario(ClockKind::WallClock, ProtocolKind::AntiEntropy);
    let (issued, waiting) = compare(&wall, 4, &grid(TieBreak::PeerId));
    assert_eq!(waiting, issued);
}

/// Protocols that send whole states keep only the first `bounds.update-records-kept-max`
/// records, and the run and its judgement do not change; op-based protocols keep every record.
#[test]
fn a_run_that_keeps_few_records_is_judged_the_same() {
    let make = |_| {
        LwwGrid::new(LwwGridConfig {
            tie_break: TieBreak::Random,
            ..LwwGridConfig::default()
        })
    };
    for protocol in [
        ProtocolKind::StateBroadcast,
        ProtocolKind::AntiEntropy,
        ProtocolKind::OpBroadcast,
    ] {
        let every = scenario(ClockKind::Lamport, protocol);
        let mut few = every.clone();
        few.bounds.update_records_kept_max = 10;
        for seed in 0..3 {
            let all = converge_checker::judge(&every, seed, &make).expect("valid scenario");
            let some = converge_checker::judge(&few, seed, &make).expect("valid scenario");
            let issued = all.outcome.updates_issued;
            assert!(issued > 1_000);
            assert_eq!(some.outcome.updates_issued, issued);
            assert_eq!(all.outcome.updates.len() as u64, issued);
            let kept = if protocol == ProtocolKind::OpBroadcast {
                issued
            } else {
                10
            };
            assert_eq!(some.outcome.updates.len() as u64, kept, "{protocol:?}");
            assert!(all.outcome.updates[..10]
                .iter()
                .zip(&some.outcome.updates)
                .all(|(a, b)| a.id == b.id && a.index == b.index));
            let (a, b) = (all.report, some.report);
            assert_eq!(a.trace_hash, b.trace_hash);
            assert_eq!(a.verdict, b.verdict, "{protocol:?} seed {seed}");
            assert_eq!(a.violations, b.violations);
            // The whole report (verdict, oracles, coverage, timeline, trace) but the scenario,
            // whose bound differs.
            let json = |report| {
                let mut value = serde_json::to_value(report).expect("a report serializes");
                value["scenario_spec"] = serde_json::Value::Null;
                value
            };
            assert!(
                json(&a) == json(&b),
                "{protocol:?} seed {seed}: reports differ"
            );
        }
    }
}
