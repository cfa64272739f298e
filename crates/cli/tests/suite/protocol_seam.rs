//! The oracles and bounds hold for protocols converge did not write: a protocol that stalls is
//! not converged and the report names who lacks what; replicas that hold the same updates with
//! different views have diverged, seen at the event where it happened; a protocol that sends to
//! a node that does not exist, sets timers without end or floods the network ends at a named
//! bound with a verdict, never a hang.

use converge::crdt::{LwwGrid, LwwGridConfig, OpCrdt, TieBreak};
use converge::netsim::protocol::{Ctx, NodeId, Protocol, Snapshot, Update};
use converge::netsim::{End, Scenario, SimDuration, Verdict};
use converge::verify::Verify;

fn grid() -> LwwGrid {
    LwwGrid::new(LwwGridConfig::default())
}

fn small() -> Scenario {
    Scenario {
        name: "seam".into(),
        replicas: 3,
        duration: SimDuration::from_secs(2),
        settle: SimDuration::from_secs(2),
        ..Scenario::default()
    }
}

/// Sends nothing, ever.
struct Silent;

impl<C: OpCrdt> Protocol<C> for Silent {
    type Message = ();
    type Node = ();
    type Timer = ();

    fn init(&self, _ctx: &Ctx<'_, C, Self>) {}

    fn on_message(
        &self,
        _node: &mut (),
        _from: NodeId,
        _message: &(),
        _ctx: &mut Ctx<'_, C, Self>,
    ) {
    }
}

#[test]
fn a_protocol_that_stalls_is_stalled_and_the_report_names_who_lacks_what() {
    let failure = Verify::new(small(), |_| grid())
        .protocol(Silent)
        .seeds(0..1)
        .run()
        .expect("valid")
        .expect_err("nothing is ever sent");
    // Not converged, and quiet for good: nothing in flight and nothing sent.
    assert_eq!(failure.report.verdict, Verdict::Stalled);
    assert_eq!(failure.report.protocol, "Silent");
    let stalled = failure
        .report
        .violations
        .iter()
        .find(|v| v.oracle == converge::checker::Oracle::Liveness)
        .expect("the stall is a violation of its own");
    assert!(stalled.detail.starts_with("stalled:"), "{}", stalled.detail);
    let violation = &failure.report.violations[0];
    assert!(
        violation.detail.contains("replica 0 lacks"),
        "{}",
        violation.detail
    );
    // Updates are named by origin and sequence number: replica 1's first write, for one.
    assert!(violation.detail.contains("r1#1"), "{}", violation.detail);
}

/// A stall of many replicas names eight of them and counts the rest, and the states still show
/// every one.
#[test]
fn a_stall_of_many_replicas_reads_as_one_sentence() {
    let scenario = Scenario {
        replicas: 30,
        ..small()
    };
    let failure = Verify::new(scenario, |_| grid())
        .protocol(Silent)
        .seeds(0..1)
        .without_shrinking()
        .run()
        .expect("valid")
        .expect_err("nothing is ever sent");
    let violation = &failure.report.violations[0];
    assert_eq!(
        violation.detail.matches(" lacks ").count(),
        8,
        "{}",
        violation.detail
    );
    assert!(
        violation
            .detail
            .ends_with("and 22 more replicas lack updates"),
        "{}",
        violation.detail
    );
    assert_eq!(violation.states.len(), 30);
}

/// Every write's state to every peer, merged on arrival: state broadcast in a few lines.
struct Push;

impl<C: OpCrdt> Protocol<C> for Push {
    type Message = Snapshot<C>;
    type Node = ();
    type Timer = ();

    fn refers_to_updates(&self) -> bool {
        false
    }

    fn init(&self, _ctx: &Ctx<'_, C, Self>) {}

    fn on_write(&self, _node: &mut (), _update: Update, ctx: &mut Ctx<'_, C, Self>) {
        let state = ctx.snapshot();
        let peers = ctx.push_targets(None);
        ctx.send_all(peers, state);
    }

    fn on_message(
        &self,
        _node: &mut (),
        _from: NodeId,
        state: &Snapshot<C>,
        ctx: &mut Ctx<'_, C, Self>,
    ) {
        ctx.merge(state);
    }
}

#[test]
fn equal_updates_with_different_views_diverge_at_the_event_that_showed_it() {
    let mut scenario = small();
    scenario.workload.keys = 1;
    scenario.workload.rate = 20.0;
    let random = LwwGridConfig {
        tie_break: TieBreak::Random,
        ..LwwGridConfig::default()
    };
    let failure = Verify::new(scenario, move |_| LwwGrid::new(random))
        .protocol(Push)
        .seeds(0..50)
        .without_shrinking()
        .run()
        .expect("valid")
        .expect_err("random tie-breaks diverge");
    assert_eq!(failure.report.verdict, Verdict::Diverges);
    let first = &failure.report.violations[0];
    assert!(
        first.event_index.is_some(),
        "strong convergence is checked after every event"
    );
    assert!(
        first.at_us < failure.report.end_ms as u64 * 1_000,
        "seen during the run"
    );
}

#[test]
fn a_correct_user_protocol_converges() {
    let mut scenario = small();
    scenario.network.duplicate = 0.3;
    let summary = Verify::new(scenario, |_| grid())
        .protocol(Push)
        .seeds(0..50)
        .assert_converges();
    assert_eq!(summary.seeds, 50);
}

/// Misbehaves in one of three ways.
#[derive(Clone, Copy)]
enum Misbehaving {
    SendsToANodeThatDoesNotExist,
    SetsTimersWithoutEnd,
    Floods,
}

impl<C: OpCrdt> Protocol<C> for Misbehaving {
    type Message = ();
    type Node = ();
    type Timer = ();

    fn init(&self, _ctx: &Ctx<'_, C, Self>) {}

    fn on_start(&self, _node: &mut (), ctx: &mut Ctx<'_, C, Self>) {
        if let Misbehaving::SetsTimersWithoutEnd = self {
            ctx.set_timer(0, ());
        }
    }

    fn on_write(&self, _node: &mut (), _update: Update, ctx: &mut Ctx<'_, C, Self>) {
        match self {
            Misbehaving::SendsToANodeThatDoesNotExist => ctx.send(99, ()),
            Misbehaving::Floods => {
                let peers = ctx.push_targets(None);
                ctx.send_all(peers, ());
            }
            Misbehaving::SetsTimersWithoutEnd => {}
        }
    }

    fn on_timer(&self, _node: &mut (), _timer: (), ctx: &mut Ctx<'_, C, Self>) {
        // Two more timers at once for every one that fires.
        ctx.set_timer(0, ());
        ctx.set_timer(0, ());
    }

    fn on_message(&self, _node: &mut (), _from: NodeId, _message: &(), ctx: &mut Ctx<'_, C, Self>) {
        // Every message makes two more.
        let peers = ctx.push_targets(None);
        ctx.send_all(peers, ());
    }
}

fn bound_of(protocol: Misbehaving) -> (String, String) {
    let mut scenario = small();
    scenario.bounds.events_max = 200_000;
    scenario.bounds.in_flight_max = 10_000;
    let failure = Verify::new(scenario, |_| grid())
        .protocol(protocol)
        .seeds(3..4)
        .run()
        .expect("valid")
        .expect_err("a misbehaving protocol is a failing run");
    assert_eq!(failure.report.verdict, Verdict::BoundReached);
    assert_eq!(failure.seed, 3);
    let End::BoundReached { bound } = &failure.report.end else {
        panic!("ended at a bound: {:?}", failure.report.end);
    };
    (bound.clone(), failure.to_string())
}

#[test]
fn misbehaving_protocols_end_at_named_bounds_with_the_seed() {
    let (bound, message) = bound_of(Misbehaving::SendsToANodeThatDoesNotExist);
    assert_eq!(bound, "send_to_unknown_node");
    assert!(
        message.contains("stopped at bound send_to_unknown_node"),
        "{message}"
    );
    assert!(message.contains("CONVERGE_SEED=3"), "{message}");
    let (bound, _) = bound_of(Misbehaving::SetsTimersWithoutEnd);
    assert!(bound == "timers_max" || bound == "actions_max", "{bound}");
    let (bound, _) = bound_of(Misbehaving::Floods);
    assert!(bound == "in_flight_max" || bound == "events_max", "{bound}");
}

/// Panics in its handler once a replica has received three messages.
struct PanicsOnTheThirdMessage;

impl<C: OpCrdt> Protocol<C> for PanicsOnTheThirdMessage {
    type Message = Snapshot<C>;
    type Node = u32;
    type Timer = ();

    fn refers_to_updates(&self) -> bool {
        false
    }

    fn init(&self, _ctx: &Ctx<'_, C, Self>) -> u32 {
        0
    }

    fn on_write(&self, _node: &mut u32, _update: Update, ctx: &mut Ctx<'_, C, Self>) {
        let state = ctx.snapshot();
        let peers = ctx.push_targets(None);
        ctx.send_all(peers, state);
    }

    fn on_message(
        &self,
        received: &mut u32,
        _from: NodeId,
        state: &Snapshot<C>,
        ctx: &mut Ctx<'_, C, Self>,
    ) {
        *received += 1;
        assert!(*received < 3, "replica {} got a third message", ctx.id());
        ctx.merge(state);
    }
}

#[test]
fn a_panic_in_user_code_is_a_verdict_with_a_seed_and_a_minimal_counterexample() {
    let failure = Verify::new(small(), |_| grid())
        .protocol(PanicsOnTheThirdMessage)
        .seeds(5..10)
        .run()
        .expect("valid")
        .expect_err("the protocol panics");
    assert_eq!(failure.seed, 5);
    assert_eq!(failure.report.verdict, Verdict::Panicked);
    let End::Panicked { message, .. } = &failure.report.end else {
        panic!("ended by the panic: {:?}", failure.report.end);
    };
    assert!(message.contains("got a third message"), "{message}");
    let text = failure.to_string();
    assert!(text.contains("violated oracle: no panic"), "{text}");
    assert!(text.contains("CONVERGE_SEED=5"), "{text}");
    let shrunk = failure
        .shrunk
        .as_ref()
        .expect("a panic shrinks like any failure");
    assert_eq!(shrunk.verdict, Verdict::Panicked);
    // Three messages to one replica: two writes elsewhere and one more, or fewer with a duplicate.
    assert!(shrunk.minimal.writes <= 3, "{text}");
}
