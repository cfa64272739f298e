//! The convergence watch groups views into classes only while its timeline records points, and
//! compares replicas directly afterwards; with many replicas it groups them by delivered set and
//! view rather than scanning them all. Every way must find the same strong-convergence violations and the same
//! time of agreement: this runs a watch that counts views for the whole run next to one whose
//! timeline is full after a few points, each with and without the lists, on the same events, over
//! runs that converge and runs that diverge (random tie-breaks, keep-local ties, crashes, late
//! joins).

use converge_checker::oracles::ConvergenceWatch;
use converge_crdt::{LwwDict, LwwDictConfig, LwwGrid, LwwGridConfig, OpCrdt, TieBreak};
use converge_netsim::{
    Observer, ProtocolKind, Scenario, SimDuration, Status, SwarmSpec, TraceEvent, World,
};

/// Shows every event to every watch, and counts the distinct views of the live replicas the
/// slow way (every view rendered and compared after every event), as the timeline should.
struct All<C: OpCrdt>(Vec<ConvergenceWatch<C>>, Vec<(u64, u32)>);

impl<C: OpCrdt> Observer<C> for All<C> {
    fn on_event(&mut self, event: &TraceEvent, world: &World<'_, C>) {
        for watch in &mut self.0 {
            watch.on_event(event, world);
        }
        let mut views: Vec<C::View> = Vec::new();
        for replica in world.replicas.iter().filter(|r| r.status == Status::Up) {
            let view = replica.crdt.view();
            if !views.contains(&view) {
                views.push(view);
            }
        }
        let distinct = views.len() as u32;
        if self.1.last().map(|p| p.1) != Some(distinct) {
            self.1.push((event.at_us, distinct));
        }
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
        let mut watches = All(
            vec![
                ConvergenceWatch::new(usize::MAX).listing_from(usize::MAX),
                ConvergenceWatch::new(usize::MAX).listing_from(0),
                ConvergenceWatch::new(3).listing_from(usize::MAX),
                ConvergenceWatch::new(3).listing_from(0),
                ConvergenceWatch::new(0).listing_from(usize::MAX),
            ],
            Vec::new(),
        );
        converge_netsim::run(scenario, seed, &make, &mut watches).expect("valid scenario");
        let whole = &watches.0[0];
        assert!(
            whole.timeline.points == watches.1,
            "seed {seed}: the timeline differs from distinct views counted the slow way"
        );
        for (way, other) in watches.0.iter().enumerate().skip(1) {
            let points = other.timeline.points.len();
            assert_eq!(
                points,
                other.timeline.points_max.min(whole.timeline.points.len())
            );
            assert_eq!(
                whole.timeline.points[..points],
                other.timeline.points[..],
                "seed {seed}, way {way}"
            );
            assert_eq!(
                whole.strong.count, other.strong.count,
                "seed {seed}, way {way}"
            );
            assert_eq!(
                whole.strong.violations, other.strong.violations,
                "seed {seed}, way {way}"
            );
            assert_eq!(
                whole.timeline.agreed_since_us, other.timeline.agreed_since_us,
                "seed {seed}, way {way}"
            );
        }
        diverged += u64::from(whole.strong.count > 0);
    }
    diverged
}

#[test]
fn every_way_of_watching_finds_the_same_violations_and_agreement() {
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
    // Enough replicas that the watch keeps its groups by default.
    let many = scenario(20, ProtocolKind::StateBroadcast);
    assert!(compare(&many, 6, &grid(TieBreak::Random)) > 0);
    assert_eq!(compare(&many, 6, &grid(TieBreak::PeerId)), 0);
}
