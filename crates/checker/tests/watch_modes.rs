//! The convergence watch groups views into classes only while its timeline records points, and
//! compares replicas directly afterwards. Both ways must find the same strong-convergence
//! violations and the same time of agreement: this runs one watch that counts views for the whole
//! run next to one whose timeline is full after a few points, on the same events, over runs that
//! converge and runs that diverge (random tie-breaks, keep-local ties, crashes, late joins).

use converge_checker::oracles::ConvergenceWatch;
use converge_crdt::{LwwDict, LwwDictConfig, LwwGrid, LwwGridConfig, OpCrdt, TieBreak};
use converge_netsim::{
    Observer, ProtocolKind, Scenario, SimDuration, SwarmSpec, TraceEvent, World,
};

/// Shows every event to both watches.
struct Both<'a, C: OpCrdt>(&'a mut ConvergenceWatch<C>, &'a mut ConvergenceWatch<C>);

impl<C: OpCrdt> Observer<C> for Both<'_, C> {
    fn on_event(&mut self, event: &TraceEvent, world: &World<'_, C>) {
        self.0.on_event(event, world);
        self.1.on_event(event, world);
    }
}

fn scenario(replicas: u32, protocol: ProtocolKind) -> Scenario {
    let mut scenario = Scenario {
        name: "watch-modes".into(),
        replicas,
        swarm: Some(SwarmSpec {
            faults: 3,
            ..SwarmSpec::default()
        }),
        ..Scenario::default()
    };
    scenario.duration = SimDuration::from_secs(8);
    scenario.settle = SimDuration::from_secs(6);
    scenario.protocol.kind = protocol;
    scenario.protocol.anti_entropy = Some(SimDuration::from_secs(1));
    scenario.workload.rate = 4.0;
    scenario
}

/// Runs `seeds` of the scenario with both watches; returns how many runs broke strong convergence.
fn compare<C: OpCrdt>(scenario: &Scenario, seeds: u64, make: &dyn Fn(u32) -> C) -> u64 {
    let mut diverged = 0;
    for seed in 0..seeds {
        let mut whole = ConvergenceWatch::new(usize::MAX);
        let mut short = ConvergenceWatch::new(3);
        converge_netsim::run(scenario, seed, make, &mut Both(&mut whole, &mut short))
            .expect("valid scenario");
        assert_eq!(
            short.timeline.points.len(),
            3.min(whole.timeline.points.len())
        );
        assert_eq!(
            whole.timeline.points[..short.timeline.points.len()],
            short.timeline.points[..],
            "seed {seed}"
        );
        assert_eq!(whole.strong.count, short.strong.count, "seed {seed}");
        assert_eq!(
            whole.strong.violations, short.strong.violations,
            "seed {seed}"
        );
        assert_eq!(
            whole.timeline.agreed_since_us, short.timeline.agreed_since_us,
            "seed {seed}"
        );
        diverged += u64::from(whole.strong.count > 0);
    }
    diverged
}

#[test]
fn counting_views_or_not_finds_the_same_violations_and_agreement() {
    let grid = |tie_break| {
        move |_| {
            LwwGrid::new(LwwGridConfig {
                tie_break,
                ..LwwGridConfig::default()
            })
        }
    };
    let state = scenario(4, ProtocolKind::StateBroadcast);
    let diverged_random = compare(&state, 40, &grid(TieBreak::Random));
    assert!(
        diverged_random > 0,
        "random tie-breaks never diverged: the test shows nothing"
    );
    assert_eq!(compare(&state, 40, &grid(TieBreak::PeerId)), 0);
    let keep_local = |_| {
        LwwDict::new(LwwDictConfig {
            tie_break: TieBreak::KeepLocal,
            ..LwwDictConfig::default()
        })
    };
    let ops = scenario(3, ProtocolKind::OpBroadcast);
    compare(&ops, 40, &keep_local);
    compare(
        &scenario(5, ProtocolKind::ReliableCausal),
        8,
        &grid(TieBreak::PeerId),
    );
}
