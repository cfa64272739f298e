//! A user's protocol over connections, from `cargo test` as its author would write it: the
//! drop of a connection loses what was in flight, and a protocol that does nothing about it
//! stalls (with the seed, what each replica lacks and a scripted minimal counterexample); one
//! that resends on reconnect converges under every seed.

use std::sync::Arc;

use converge::checker::model::{ModelCheck, NetworkKind, Verdict as CheckVerdict};
use converge::crdt::{LwwGrid, LwwGridConfig, OpCrdt};
use converge::netsim::protocol::{Ctx, NodeId, Protocol, Update};
use converge::netsim::{FaultSpec, Latency, Scenario, SimDuration, Topology, Verdict};
use converge::verify::Verify;

/// Each write once to the relay server, which passes it on to the other clients; with
/// `resend_on_connect`, both ends of a connection that comes back send each other every update
/// they hold.
#[derive(Clone, Debug)]
struct Flood {
    resend_on_connect: bool,
}

impl<C: OpCrdt> Protocol<C> for Flood {
    type Message = Arc<[Update]>;
    type Node = ();
    type Timer = ();

    fn init(&self, _ctx: &Ctx<'_, C, Self>) {}

    fn on_write(&self, _node: &mut (), update: Update, ctx: &mut Ctx<'_, C, Self>) {
        let peers = ctx.push_targets(None);
        ctx.send_all(peers, Arc::from([update].as_slice()));
    }

    fn on_message(
        &self,
        _node: &mut (),
        from: NodeId,
        updates: &Arc<[Update]>,
        ctx: &mut Ctx<'_, C, Self>,
    ) {
        let mut learned = false;
        for update in updates.iter() {
            if !ctx.holds(*update) {
                learned |= ctx.apply(*update);
            }
        }
        if learned && ctx.is_server() {
            let others = ctx.push_targets(Some(from));
            ctx.forward(others);
        }
    }

    fn on_connect(&self, _node: &mut (), peer: NodeId, ctx: &mut Ctx<'_, C, Self>) {
        if self.resend_on_connect {
            let held: Vec<Update> = (0..ctx.replicas())
                .flat_map(|origin| ctx.updates_by(origin).collect::<Vec<_>>())
                .filter(|update| ctx.holds(*update))
                .collect();
            ctx.send(peer, held.into());
        }
    }
}

/// Three clients of a relay over in-order connections; each client's connection drops once.
fn dropping_connections() -> Scenario {
    let mut scenario = Scenario {
        name: "flood-over-connections".into(),
        replicas: 3,
        duration: SimDuration::from_secs(6),
        settle: SimDuration::from_secs(4),
        ..Scenario::default()
    };
    scenario.protocol.topology = Topology::Relay;
    scenario.network.in_order = true;
    scenario.network.latency = Latency::Uniform {
        min: SimDuration::from_ms(20),
        max: SimDuration::from_ms(120),
    };
    scenario.workload.rate = 6.0;
    for (client, at_ms) in [(0, 1_000), (1, 2_500), (2, 4_000)] {
        scenario.faults.push(FaultSpec::ConnectionDrop {
            at: SimDuration::from_ms(at_ms),
            nodes: [client, 3],
            reconnect: None,
        });
    }
    scenario
}

fn grid(_: u32) -> LwwGrid {
    LwwGrid::new(LwwGridConfig::default())
}

#[test]
fn a_protocol_that_ignores_dropped_connections_stalls() {
    let failure = Verify::new(dropping_connections(), grid)
        .protocol(Flood {
            resend_on_connect: false,
        })
        .seeds(0..20)
        .run()
        .expect("valid")
        .expect_err("what was in flight at a drop is lost for good");
    assert_eq!(failure.report.verdict, Verdict::Stalled);
    let text = failure.to_string();
    assert!(text.contains("stalled: nothing in flight"), "{text}");
    assert!(text.contains("lacks"), "{text}");
    let minimal = failure.shrunk.as_ref().expect("shrunk");
    assert!(minimal.scenario.script.is_some(), "{text}");
    assert!(
        minimal.minimal.faults <= 1 && minimal.minimal.writes <= 2,
        "{text}"
    );
}

#[test]
fn resending_on_reconnect_converges() {
    Verify::new(dropping_connections(), grid)
        .protocol(Flood {
            resend_on_connect: true,
        })
        .seeds(0..200)
        .assert_converges();
}

/// Two clients of a relay over connections, every interleaving of their writes with one
/// connection drop, as the model checker explores them from `cargo test`.
fn model_check(resend_on_connect: bool) -> ModelCheck<LwwGrid, Flood> {
    ModelCheck::new(Flood { resend_on_connect }, grid)
        .topology(Topology::Relay)
        .replicas(2)
        .network(NetworkKind::Connections)
}

#[test]
fn the_model_checker_finds_the_stall_and_the_simulator_replays_it() {
    let check = model_check(false);
    let report = check.run().expect("a valid configuration");
    let explained = check.explain(&report);
    assert_eq!(
        report.verdict,
        CheckVerdict::Fail {
            property: "quiescent implies converged".into()
        },
        "{explained}"
    );
    let counterexample = report.counterexample.as_ref().expect("a counterexample");
    // Both writes, one of them passed to the server, then the drop of the other client's
    // connection with both directions in flight, and the reconnect: quiescence waits for every
    // write and for what is still in flight, so a drop that loses one way only is not yet a
    // stall (the other write still arrives).
    assert!(counterexample.minimal, "{explained}");
    assert_eq!(counterexample.depth, 5, "{explained}");
    assert!(
        counterexample.steps[3].contains("<-> server drops, losing"),
        "{explained}"
    );
    assert!(explained.contains("stalled"), "{explained}");
    let replay = check.replay(counterexample).expect("the path replays");
    assert_eq!(replay.verdict, Verdict::Stalled, "{explained}");
}

#[test]
fn the_model_checker_passes_the_protocol_that_resends_on_reconnect() {
    for drops in [1, 2] {
        let check = model_check(true).connection_drops(drops);
        let report = check.run().expect("a valid configuration");
        assert_eq!(
            report.verdict,
            CheckVerdict::Pass,
            "{}",
            check.explain(&report)
        );
    }
}
