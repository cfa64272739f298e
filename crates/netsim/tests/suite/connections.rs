//! Connections: in-order links, connection drops that lose what is in flight, both ends told of
//! the drop and of the reconnect, and the refusals of connections that do not exist.

use std::cell::RefCell;

use converge_crdt::{LwwGrid, LwwGridConfig, OpCrdt, ReplicaId};
use converge_netsim::protocol::{Ctx, NodeId, Protocol, Update};
use converge_netsim::{
    run, run_protocol, DropCause, EventKind, FaultSpec, Latency, NoObserver, Outcome, ProtocolKind,
    Reconnect, Scenario, SimDuration, SwarmSpec, Topology,
};

fn grid(_: ReplicaId) -> LwwGrid {
    LwwGrid::new(LwwGridConfig::default())
}

fn ms(ms: u64) -> SimDuration {
    SimDuration::from_ms(ms)
}

/// Three replicas flooding ops over links with a wide jitter (1 to 200 ms), so that messages
/// overtake each other unless the links are in order.
fn jittery() -> Scenario {
    let mut scenario = Scenario {
        name: "jittery".into(),
        replicas: 3,
        ..Scenario::default()
    };
    scenario.protocol.kind = ProtocolKind::OpBroadcast;
    scenario.network.latency = Latency::Uniform {
        min: ms(1),
        max: ms(200),
    };
    scenario.workload.rate = 20.0;
    scenario.duration = SimDuration::from_secs(3);
    scenario.settle = SimDuration::from_secs(2);
    scenario
}

/// For every link, the message numbers in the order they were delivered.
fn deliveries_per_link(outcome: &Outcome<LwwGrid>) -> Vec<((NodeId, NodeId), Vec<u64>)> {
    let mut links: std::collections::BTreeMap<(NodeId, NodeId), Vec<u64>> = Default::default();
    for event in &outcome.trace {
        if let EventKind::Deliver {
            from, to, message, ..
        } = event.kind
        {
            links.entry((from, to)).or_default().push(message);
        }
    }
    links.into_iter().collect()
}

#[test]
fn in_order_links_deliver_in_send_order_where_jitter_would_reorder() {
    let mut scenario = jittery();
    let reordering = run(&scenario, 3, &grid, &mut NoObserver).expect("valid");
    assert!(
        reordering.coverage.reordered_deliveries > 0,
        "the jitter reorders without in-order links"
    );
    scenario.network.in_order = true;
    let ordered = run(&scenario, 3, &grid, &mut NoObserver).expect("valid");
    assert_eq!(ordered.coverage.reordered_deliveries, 0);
    for (link, messages) in deliveries_per_link(&ordered) {
        assert!(
            messages.windows(2).all(|pair| pair[0] < pair[1]),
            "link {link:?} delivered out of order: {messages:?}"
        );
    }
    assert_eq!(ordered.messages.sent, ordered.messages.delivered);
}

#[test]
fn one_in_order_link_override_orders_that_link_alone() {
    let mut scenario = jittery();
    scenario.network.links.push(converge_netsim::LinkSpec {
        from: Some(0),
        to: Some(1),
        in_order: Some(true),
        ..Default::default()
    });
    let outcome = run(&scenario, 3, &grid, &mut NoObserver).expect("valid");
    let links = deliveries_per_link(&outcome);
    let ordered = &links
        .iter()
        .find(|(link, _)| *link == (0, 1))
        .expect("0 -> 1")
        .1;
    assert!(ordered.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(
        links
            .iter()
            .any(|(_, messages)| messages.windows(2).any(|pair| pair[0] > pair[1])),
        "the other links still reorder"
    );
}

/// What a node was told: `(node, peer, connected, at_us)`.
type Telling = (NodeId, NodeId, bool, u64);

/// What the nodes were told, in order.
type Told = RefCell<Vec<Telling>>;

/// Sends a numbered message to its peer every 10 ms, and writes down the connection events.
struct Chatty<'a> {
    told: &'a Told,
}

impl<C: OpCrdt> Protocol<C> for Chatty<'_> {
    type Message = u64;
    type Node = u64;
    type Timer = ();

    fn init(&self, _ctx: &Ctx<'_, C, Self>) -> u64 {
        0
    }

    fn on_start(&self, _node: &mut u64, ctx: &mut Ctx<'_, C, Self>) {
        ctx.set_timer(10_000, ());
    }

    fn on_timer(&self, sent: &mut u64, _timer: (), ctx: &mut Ctx<'_, C, Self>) {
        if ctx.now_us() < 3_000_000 {
            ctx.set_timer(10_000, ());
        }
        let peer = 1 - ctx.id();
        *sent += 1;
        ctx.send(peer, *sent);
    }

    fn on_message(&self, _n: &mut u64, _f: NodeId, _m: &u64, _ctx: &mut Ctx<'_, C, Self>) {}

    fn on_disconnect(&self, _node: &mut u64, peer: NodeId, ctx: &mut Ctx<'_, C, Self>) {
        assert!(!ctx.is_connected(peer));
        self.told
            .borrow_mut()
            .push((ctx.id(), peer, false, ctx.now_us()));
    }

    fn on_connect(&self, _node: &mut u64, peer: NodeId, ctx: &mut Ctx<'_, C, Self>) {
        assert!(ctx.is_connected(peer));
        self.told
            .borrow_mut()
            .push((ctx.id(), peer, true, ctx.now_us()));
    }

    fn on_write(&self, _node: &mut u64, _update: Update, _ctx: &mut Ctx<'_, C, Self>) {}
}

fn two_chatty_nodes() -> Scenario {
    let mut scenario = Scenario {
        name: "chatty".into(),
        replicas: 2,
        ..Scenario::default()
    };
    scenario.workload.rate = 0.0;
    scenario.network.in_order = true;
    scenario.network.latency = Latency::Constant { value: ms(50) };
    scenario.duration = SimDuration::from_secs(3);
    scenario.faults.push(FaultSpec::ConnectionDrop {
        at: SimDuration::from_secs(1),
        nodes: [1, 0],
        reconnect: Some(ms(1_500)),
    });
    scenario
}

/// Runs two chatty nodes through `scenario`; returns the outcome and what they were told.
fn chat(scenario: &Scenario) -> (Outcome<LwwGrid>, Vec<Telling>) {
    let told = Told::default();
    let outcome =
        run_protocol(scenario, 0, &Chatty { told: &told }, &grid, &mut NoObserver).expect("valid");
    (outcome, told.into_inner())
}

#[test]
fn a_connection_drop_loses_what_is_in_flight_both_ways_and_tells_both_ends() {
    let (outcome, told) = chat(&two_chatty_nodes());
    assert_eq!(
        told,
        vec![
            (1, 0, false, 1_000_000),
            (0, 1, false, 1_000_000),
            (1, 0, true, 1_500_000),
            (0, 1, true, 1_500_000),
        ]
    );
    let mut sent_at = std::collections::BTreeMap::new();
    let mut lost: Vec<(NodeId, u64, u64)> = Vec::new();
    for event in &outcome.trace {
        match event.kind {
            EventKind::Send { message, .. } => {
                sent_at.insert(message, event.at_us);
            }
            EventKind::Drop {
                from,
                message,
                cause: DropCause::Disconnected,
                ..
            } => lost.push((from, sent_at[&message], event.at_us)),
            _ => {}
        }
    }
    // 50 ms of latency at one message per 10 ms: the five sent in the 50 ms before the drop
    // were in flight each way, and are lost when they would have arrived.
    let in_flight = |node| {
        lost.iter()
            .filter(|(from, sent, at)| *from == node && *sent < 1_000_000 && *at == sent + 50_000)
            .count()
    };
    assert_eq!((in_flight(0), in_flight(1)), (5, 5), "{lost:?}");
    // Then everything sent while the connection is down (1 s to 1.5 s) is lost at once.
    let while_down = lost
        .iter()
        .filter(|(_, sent, at)| sent == at && (1_000_000..1_500_000).contains(sent))
        .count();
    assert_eq!(while_down, 100);
    assert_eq!(outcome.coverage.connection_drops, 1);
    // Nothing sent after the reconnect is lost.
    assert_eq!(outcome.messages.dropped as usize, lost.len());
}

#[test]
fn connections_that_do_not_exist_or_come_back_before_they_drop_are_refused() {
    let mut relay = Scenario {
        replicas: 3,
        ..Scenario::default()
    };
    relay.protocol.topology = Topology::Relay;
    let refused = |nodes: [NodeId; 2], reconnect: Option<u64>, scenario: &Scenario| {
        let mut scenario = scenario.clone();
        scenario.faults.push(FaultSpec::ConnectionDrop {
            at: SimDuration::from_secs(2),
            nodes,
            reconnect: reconnect.map(SimDuration::from_secs),
        });
        scenario.validate().expect_err("refused")
    };
    let clients = refused([0, 1], None, &relay);
    assert_eq!(clients.path, "faults[0].nodes");
    assert!(clients.message.contains("server (node 3)"), "{clients}");
    assert_eq!(refused([0, 9], None, &relay).path, "faults[0].nodes[1]");
    assert_eq!(
        refused([2, 2], None, &Scenario::default()).path,
        "faults[0].nodes"
    );
    let early = refused([0, 3], Some(1), &relay);
    assert_eq!(early.path, "faults[0].reconnect");
    assert!(early.message.contains("after at"), "{early}");
    let mut fine = relay.clone();
    fine.faults.push(FaultSpec::ConnectionDrop {
        at: SimDuration::from_secs(2),
        nodes: [3, 1],
        reconnect: None,
    });
    fine.validate()
        .expect("a client and the server are connected");
    let mut gossip = Scenario::default();
    gossip.protocol.kind = ProtocolKind::OpStream;
    gossip.protocol.topology = Topology::Gossip;
    assert_eq!(
        gossip.validate().expect_err("refused").path,
        "protocol.topology"
    );
}

#[test]
fn swarm_mode_draws_connection_drops_only_where_links_are_connections() {
    let mut scenario = jittery();
    scenario.protocol.topology = Topology::Relay;
    scenario.swarm = Some(SwarmSpec {
        faults: 8,
        ..SwarmSpec::default()
    });
    let drops = |scenario: &Scenario| {
        (0..20)
            .flat_map(|seed| {
                run(scenario, seed, &grid, &mut NoObserver)
                    .expect("valid")
                    .faults
            })
            .filter(|f| matches!(f, FaultSpec::ConnectionDrop { .. }))
            .collect::<Vec<_>>()
    };
    assert!(drops(&scenario).is_empty());
    scenario.network.in_order = true;
    let drawn = drops(&scenario);
    assert!(!drawn.is_empty());
    for fault in drawn {
        let FaultSpec::ConnectionDrop {
            nodes, reconnect, ..
        } = fault
        else {
            unreachable!()
        };
        assert!(
            nodes.contains(&3),
            "a relay's connections reach the server: {nodes:?}"
        );
        assert!(reconnect.is_some());
    }
}

#[test]
fn op_stream_resumes_after_a_drop_with_a_handshake_and_not_when_it_keeps_its_position() {
    let mut scenario = jittery();
    scenario.protocol.kind = ProtocolKind::OpStream;
    scenario.protocol.topology = Topology::Relay;
    scenario.network.in_order = true;
    scenario.faults.push(FaultSpec::ConnectionDrop {
        at: SimDuration::from_secs(1),
        nodes: [0, 3],
        reconnect: None,
    });
    let complete = |outcome: &Outcome<LwwGrid>| {
        let all = outcome.updates_issued as u32;
        outcome.replicas.iter().all(|r| r.delivered.len() == all)
    };
    let lost_in_flight = |outcome: &Outcome<LwwGrid>| {
        outcome.trace.iter().any(|e| {
            matches!(
                e.kind,
                EventKind::Drop {
                    cause: DropCause::Disconnected,
                    ..
                }
            )
        })
    };
    for seed in 0..10 {
        let outcome = run(&scenario, seed, &grid, &mut NoObserver).expect("valid");
        assert!(lost_in_flight(&outcome), "seed {seed} lost nothing");
        assert!(complete(&outcome), "seed {seed}: the handshake resumes");
    }
    scenario.protocol.on_reconnect = Reconnect::KeepPosition;
    let stalled = (0..10)
        .filter(|seed| !complete(&run(&scenario, *seed, &grid, &mut NoObserver).expect("valid")))
        .count();
    assert!(stalled >= 5, "{stalled} of 10 seeds lost ops for good");
}

#[test]
fn a_connection_across_a_cut_drops_at_its_first_send_and_comes_back_when_the_cut_heals() {
    let mut scenario = two_chatty_nodes();
    scenario.faults = vec![FaultSpec::Isolate {
        at: SimDuration::from_ms(1_005),
        heal: Some(SimDuration::from_ms(2_000)),
        replica: 0,
    }];
    let (outcome, told) = chat(&scenario);
    // The first send across the cut (node 0's at 1.01 s) breaks the connection, as a TCP
    // connection breaks when its peer stops answering; both ends are told, and told again when
    // the cut heals.
    assert_eq!(
        told,
        vec![
            (0, 1, false, 1_010_000),
            (1, 0, false, 1_010_000),
            (0, 1, true, 2_000_000),
            (1, 0, true, 2_000_000),
        ]
    );
    assert_eq!(outcome.coverage.connection_drops, 1);
    let partition_drops = outcome
        .trace
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Drop {
                    cause: DropCause::Partition,
                    ..
                }
            )
        })
        .count();
    assert_eq!(partition_drops, 0, "a connection is never a lossy link");
}
