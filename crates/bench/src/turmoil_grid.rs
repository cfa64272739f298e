//! The reference workload written for turmoil, the deterministic network simulator from tokio-rs,
//! the way a user of turmoil would write it: one simulated host per replica, each an async task
//! with a UDP socket, tokio timers in turmoil's simulated time, and the grid from converge-crdt.
//!
//! What is the same as the reference scenario: the number of replicas, the grid and its merges
//! (`LwwGrid::merge` of every received state), Lamport stamps, the write process (exponential gaps
//! at the scenario's rate per replica, uniform keys and values), state broadcast to every other
//! replica on each local write, anti-entropy rounds at the scenario's interval to `fanout` random
//! peers (each replica starting at a random offset), the loss probability, the latency range and
//! the simulated duration.
//!
//! What differs, and why:
//! - Turmoil's own `fail_rate` breaks a whole link for a number of ticks (a partition, repaired
//!   with `repair_rate`), not one message at a time. Per-message loss is therefore drawn by the
//!   sender from its seeded stream: a lost message is counted as sent and dropped and never handed
//!   to the socket, exactly as the simulator counts it.
//! - Turmoil draws latency from an exponential curve between its minimum and maximum, at the
//!   granularity of its tick (1 ms, the default); the simulator draws uniformly, in microseconds.
//!   The range is the same (10-50 ms); only which message overtakes which differs.
//! - A state travels as bytes (turmoil's UDP carries bytes): 9 cells of 21 bytes, encoded and
//!   decoded by hand. The simulator hands the receiver a shared in-memory state instead.
//!
//! Events are counted with the simulator's definition (one trace event each): a write, a send, a
//! delivery, a drop, an anti-entropy timer. The comparison that matters is wall time for the same
//! simulated workload; the event counts show that the workloads are the same size.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use converge_crdt::clock::Skew;
use converge_crdt::grid::Cell;
use converge_crdt::{
    Clock, ClockKind, FixedCoin, GridOp, Intent, LwwGrid, LwwGridConfig, OpCrdt, ReplicaId, Stamp,
    StateCrdt,
};
use converge_netsim::{CrdtSpec, Latency, ProtocolKind, Scenario, Topology};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The UDP port every replica listens on.
const PORT: u16 = 9000;
/// Bytes of one encoded cell: presence, value, stamp time, stamp replica.
const CELL_BYTES: usize = 1 + 8 + 8 + 4;
/// The receive buffer: large enough for any grid the reference shape could hold.
const RECEIVE_BUFFER_BYTES: usize = 4096;

/// The workload, read off a scenario so that both simulators run the same one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TurmoilWorkload {
    pub replicas: u32,
    pub grid: LwwGridConfig,
    pub duration: Duration,
    pub write_rate_per_s: f64,
    pub keys: u32,
    pub values: u64,
    pub anti_entropy: Duration,
    pub fanout: u32,
    pub drop: f64,
    pub latency_min: Duration,
    pub latency_max: Duration,
}

impl TurmoilWorkload {
    /// The turmoil rendering of `scenario`, which must be a state broadcast on a mesh with
    /// anti-entropy, uniform latency and no faults (the shape of the reference scenario).
    pub fn of(scenario: &Scenario) -> Result<TurmoilWorkload, String> {
        let protocol = &scenario.protocol;
        if protocol.kind != ProtocolKind::StateBroadcast || protocol.topology != Topology::Mesh {
            return Err("only state broadcast on a mesh is written for turmoil".into());
        }
        let Some(anti_entropy) = protocol.anti_entropy else {
            return Err("the turmoil workload needs anti-entropy".into());
        };
        let CrdtSpec::LwwGrid(grid) = scenario.crdt else {
            return Err("the turmoil workload runs the LWW grid".into());
        };
        let Latency::Uniform { min, max } = scenario.network.latency else {
            return Err("the turmoil workload needs uniform latency".into());
        };
        if !scenario.faults.is_empty() || scenario.swarm.is_some() || scenario.script.is_some() {
            return Err("the turmoil workload has no faults".into());
        }
        Ok(TurmoilWorkload {
            replicas: scenario.replicas,
            grid,
            duration: Duration::from_micros(scenario.duration.us + scenario.settle.us),
            write_rate_per_s: scenario.workload.rate,
            keys: scenario.workload.keys,
            values: scenario.workload.values,
            anti_entropy: Duration::from_micros(anti_entropy.us),
            fanout: protocol.fanout,
            drop: scenario.network.drop,
            latency_min: Duration::from_micros(min.us),
            latency_max: Duration::from_micros(max.us),
        })
    }
}

/// What a turmoil run did, counted like the simulator's trace events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TurmoilCounts {
    pub writes: u64,
    pub sends: u64,
    pub deliveries: u64,
    pub drops: u64,
    pub timers: u64,
}

impl TurmoilCounts {
    /// Events as the simulator counts them: one per write, send, delivery, drop and timer.
    pub fn events(&self) -> u64 {
        self.writes + self.sends + self.deliveries + self.drops + self.timers
    }
}

/// One turmoil run: its counts, its wall time, and the final grid of every replica.
pub struct TurmoilRun {
    pub counts: TurmoilCounts,
    pub wall: Duration,
    pub steps: u64,
    pub grids: Vec<LwwGrid>,
}

/// Runs `workload` on turmoil with `seed`. Fails if turmoil reports a host error.
pub fn run_turmoil(workload: &TurmoilWorkload, seed: u64) -> Result<TurmoilRun, String> {
    let started = Instant::now();
    let counts = Rc::new(RefCell::new(TurmoilCounts::default()));
    let grids = Rc::new(RefCell::new(vec![
        LwwGrid::new(workload.grid);
        workload.replicas as usize
    ]));
    // A little past the duration, so that turmoil's own time limit never ends the loop below.
    let limit = workload.duration + Duration::from_secs(1);
    let mut sim = turmoil::Builder::new()
        .simulation_duration(limit)
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(workload.latency_min)
        .max_message_latency(workload.latency_max)
        .epoch(SystemTime::UNIX_EPOCH)
        .rng_seed(seed)
        .build();
    for replica in 0..workload.replicas {
        let counts = counts.clone();
        let grids = grids.clone();
        let workload = *workload;
        sim.host(host_name(replica), move || {
            replica_task(workload, seed, replica, counts.clone(), grids.clone())
        });
    }
    let mut steps = 0u64;
    while sim.elapsed() < workload.duration {
        sim.step().map_err(|e| e.to_string())?;
        steps += 1;
    }
    let wall = started.elapsed();
    drop(sim);
    let counts = *counts.borrow();
    let grids = grids.borrow().clone();
    Ok(TurmoilRun {
        counts,
        wall,
        steps,
        grids,
    })
}

fn host_name(replica: ReplicaId) -> String {
    format!("replica-{replica}")
}

/// A seeded stream for one replica, independent of every other replica's.
fn stream(seed: u64, replica: ReplicaId) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..12].copy_from_slice(&replica.to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn below(rng: &mut ChaCha8Rng, bound: u64) -> u64 {
    rng.next_u64() % bound.max(1)
}

fn exponential_gap(rng: &mut ChaCha8Rng, rate_per_s: f64) -> Duration {
    let mean_us = 1e6 / rate_per_s;
    let us = -mean_us * (1.0 - unit(rng)).ln();
    Duration::from_micros((us.round() as u64).max(1))
}

/// One replica: writes, broadcasts on each write, anti-entropy rounds, merges what arrives.
async fn replica_task(
    workload: TurmoilWorkload,
    seed: u64,
    replica: ReplicaId,
    counts: Rc<RefCell<TurmoilCounts>>,
    grids: Rc<RefCell<Vec<LwwGrid>>>,
) -> turmoil::Result {
    let socket =
        turmoil::net::UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT))
            .await?;
    let peers: Vec<SocketAddr> = (0..workload.replicas)
        .filter(|r| *r != replica)
        .map(|r| SocketAddr::new(turmoil::lookup(host_name(r)), PORT))
        .collect();
    let mut rng = stream(seed, replica);
    let mut clock = Clock::new(ClockKind::Lamport, Skew::default());
    let coin = &mut FixedCoin(false);
    let start = tokio::time::Instant::now();
    let mut next_write = start + exponential_gap(&mut rng, workload.write_rate_per_s);
    let mut next_round = start
        + Duration::from_micros(below(
            &mut rng,
            workload.anti_entropy.as_micros().max(1) as u64,
        ));
    let mut receive = vec![0u8; RECEIVE_BUFFER_BYTES];
    let mut send = Vec::with_capacity(RECEIVE_BUFFER_BYTES);
    let mut round_targets = Vec::with_capacity(workload.fanout as usize);
    loop {
        // The grid lives in the shared vector (so that the caller can read the final states) and
        // is borrowed only between awaits.
        let targets: &[SocketAddr] = tokio::select! {
            received = socket.recv_from(&mut receive) => {
                let (len, _from) = received?;
                let incoming = decode(&receive[..len], workload.grid);
                grids.borrow_mut()[replica as usize].merge(&incoming, coin);
                clock.observe(incoming.time_max());
                counts.borrow_mut().deliveries += 1;
                &[]
            }
            () = tokio::time::sleep_until(next_write) => {
                next_write += exponential_gap(&mut rng, workload.write_rate_per_s);
                let key = below(&mut rng, u64::from(workload.keys)) as u32;
                let intent = Intent::Put { key, value: 1 + below(&mut rng, workload.values) };
                let now_us = (tokio::time::Instant::now() - start).as_micros() as u64;
                let grid = &mut grids.borrow_mut()[replica as usize];
                let time = clock.tick(now_us, grid.key_time(key));
                let op: GridOp = grid.prepare(&intent, Stamp::new(time, replica));
                grid.apply(&op, coin);
                counts.borrow_mut().writes += 1;
                &peers
            }
            () = tokio::time::sleep_until(next_round) => {
                next_round += workload.anti_entropy;
                counts.borrow_mut().timers += 1;
                let mut pool = peers.clone();
                let fanout = (workload.fanout as usize).min(pool.len());
                round_targets.clear();
                for _ in 0..fanout {
                    round_targets.push(pool.swap_remove(below(&mut rng, pool.len() as u64) as usize));
                }
                &round_targets
            }
        };
        if targets.is_empty() {
            continue;
        }
        encode(&grids.borrow()[replica as usize], &mut send);
        for target in targets {
            counts.borrow_mut().sends += 1;
            if unit(&mut rng) < workload.drop {
                counts.borrow_mut().drops += 1;
                continue;
            }
            socket.send_to(&send, *target).await?;
        }
    }
}

/// The grid's cells, row-major, `CELL_BYTES` each.
fn encode(grid: &LwwGrid, out: &mut Vec<u8>) {
    out.clear();
    let cells = grid.config().rows * grid.config().cols;
    for index in 0..cells {
        match grid.cell(index) {
            Some(cell) => {
                out.push(1 + u8::from(cell.value.is_some()));
                out.extend_from_slice(&cell.value.unwrap_or(0).to_le_bytes());
                out.extend_from_slice(&cell.stamp.time.to_le_bytes());
                out.extend_from_slice(&cell.stamp.replica.to_le_bytes());
            }
            None => out.extend_from_slice(&[0; CELL_BYTES]),
        }
    }
}

/// The inverse of [`encode`]: a grid holding exactly the encoded cells.
fn decode(bytes: &[u8], config: LwwGridConfig) -> LwwGrid {
    let mut grid = LwwGrid::new(config);
    let coin = &mut FixedCoin(false);
    for (index, chunk) in bytes.chunks_exact(CELL_BYTES).enumerate() {
        if chunk[0] == 0 {
            continue;
        }
        let word = |at: usize| u64::from_le_bytes(chunk[at..at + 8].try_into().expect("8 bytes"));
        let cell = Cell {
            value: (chunk[0] == 2).then(|| word(1)),
            stamp: Stamp::new(
                word(9),
                u32::from_le_bytes(chunk[17..21].try_into().expect("4 bytes")),
            ),
        };
        grid.apply(
            &GridOp {
                cell: index as u32,
                value: cell.value,
                stamp: cell.stamp,
            },
            coin,
        );
    }
    grid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::reference_scenario;

    #[test]
    fn the_reference_scenario_has_a_turmoil_rendering() {
        let workload = TurmoilWorkload::of(&reference_scenario()).expect("renders");
        assert_eq!(workload.replicas, 5);
        assert_eq!(workload.duration, Duration::from_secs(60));
        assert_eq!(workload.anti_entropy, Duration::from_secs(1));
        assert_eq!(workload.drop, 0.05);
        assert_eq!(workload.latency_min, Duration::from_millis(10));
        assert_eq!(workload.latency_max, Duration::from_millis(50));
    }

    #[test]
    fn a_grid_survives_encoding() {
        let config = LwwGridConfig::default();
        let mut grid = LwwGrid::new(config);
        let coin = &mut FixedCoin(false);
        for (key, time) in [(0u32, 3u64), (4, 7), (8, 1)] {
            let op = grid.prepare(
                &Intent::Put {
                    key,
                    value: 40 + key as u64,
                },
                Stamp::new(time, 2),
            );
            grid.apply(&op, coin);
        }
        let op = grid.prepare(&Intent::Remove { key: 5 }, Stamp::new(9, 1));
        grid.apply(&op, coin);
        let mut bytes = Vec::new();
        encode(&grid, &mut bytes);
        assert_eq!(bytes.len(), 9 * CELL_BYTES);
        assert_eq!(decode(&bytes, config), grid);
    }

    #[test]
    fn a_short_turmoil_run_writes_sends_and_merges() {
        let mut scenario = reference_scenario();
        scenario.duration = converge_netsim::SimDuration::from_secs(2);
        let workload = TurmoilWorkload::of(&scenario).expect("renders");
        let run = run_turmoil(&workload, 7).expect("runs");
        assert!(
            run.counts.writes > 0 && run.counts.deliveries > 0,
            "{:?}",
            run.counts
        );
        assert!(run.counts.sends >= run.counts.deliveries + run.counts.drops);
        assert_eq!(run.grids.len(), 5);
    }
}
