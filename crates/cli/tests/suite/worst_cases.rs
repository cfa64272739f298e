//! Worst cases within the caps: a generator of scenario files, each just under one cap the
//! validator enforces (or several at once), run through the real binary path (`converge run FILE
//! --seed 0 --out DIR`, JSON and HTML reports and trace exports), each asserted to finish within
//! 60 s of wall time and 2 GiB of peak resident memory (docs/robustness.md, "Accepted means within
//! a minute and 2 GiB"). A case whose `bounds.events-max` the work cap decides is also checked to
//! be refused, naming `RUN_WORK_MAX`, one event above it.
//!
//! They take minutes, so they run only in release with `CONVERGE_WORST_CASES=1` (as `.ci/run`
//! does); `CONVERGE_WORST_CASES=name,name` runs the cases named. Each prints its time and peak
//! memory, the table docs/robustness.md quotes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use converge::netsim::validation::RUN_WORK_MAX;
use converge::netsim::Bounds;
use converge::scenario_file::{self, Format};

use crate::common::scratch;

/// The promise: wall time and peak memory of one `converge run` of an accepted file.
const WALL_MAX: Duration = Duration::from_secs(60);
const PEAK_BYTES_MAX: u64 = 2 << 30;
/// A case still running this long is ended: it has failed, and waiting longer tells nothing.
const WALL_KILL: Duration = Duration::from_secs(120);

struct Case {
    name: &'static str,
    /// The input class, as the table in docs/robustness.md names it.
    class: &'static str,
    text: String,
    /// Whether `bounds.events-max` is set to the most the work cap allows.
    at_work_cap: bool,
}

fn case(name: &'static str, class: &'static str, body: &str) -> Case {
    Case {
        name,
        class,
        text: format!("name = \"{name}\"\n{body}"),
        at_work_cap: false,
    }
}

/// A case whose `bounds.events-max` is the largest the work cap accepts (at most the default).
fn at_work_cap(name: &'static str, class: &'static str, body: &str) -> Case {
    Case {
        at_work_cap: true,
        ..case(name, class, body)
    }
}

fn grid(rows: u32, cols: u32) -> String {
    format!("[crdt]\nkind = \"lww-grid\"\nrows = {rows}\ncols = {cols}\n")
}

/// The generator: one scenario per cap or combination of caps, each as large as the caps allow.
fn cases() -> Vec<Case> {
    let mut cases = vec![
        at_work_cap(
            "grid-max-state-broadcast",
            "biggest grid (256 x 256) on the most replicas NODE_CELLS_MAX allows (151), state broadcast: states in flight",
            &format!(
                "replicas = 151\nduration = \"1h\"\n{}[protocol]\nkind = \"state-broadcast\"\n\
                 [workload]\nrate = 1.0\nkeys = 65536\n",
                grid(256, 256)
            ),
        ),
        at_work_cap(
            "grid-max-anti-entropy",
            "biggest grid, anti-entropy every 1 ms: a whole-state merge per event",
            &format!(
                "replicas = 4\nduration = \"10h\"\n{}[protocol]\nkind = \"anti-entropy\"\n\
                 interval = \"1ms\"\nfanout = 3\n[workload]\nrate = 100.0\nkeys = 65536\n",
                grid(256, 256)
            ),
        ),
        at_work_cap(
            "grid-max-op-broadcast",
            "biggest grid, op broadcast at 1,000 writes/s: a new view per event",
            &format!(
                "replicas = 4\nduration = \"100s\"\n{}[protocol]\nkind = \"op-broadcast\"\n\
                 [workload]\nrate = 1000.0\nkeys = 65536\n",
                grid(256, 256)
            ),
        ),
        at_work_cap(
            "grid-diverging-shrunk",
            "a diverging 64 x 64 grid (random tie-break) at the work cap: too large to shrink, the page says so",
            "replicas = 3\nduration = \"1h\"\n[crdt]\nkind = \"lww-grid\"\nrows = 64\ncols = 64\n\
             tie-break = \"random\"\n[protocol]\nkind = \"state-broadcast\"\ntopology = \"relay\"\n\
             [workload]\nrate = 20.0\nkeys = 16\n",
        ),
        case(
            "grid-diverging-shrink-max",
            "a diverging 64 x 64 grid just under the work converge run still shrinks (a sixth of RUN_WORK_MAX): the run, then shrinking",
            "replicas = 3\nduration = \"1000s\"\n[crdt]\nkind = \"lww-grid\"\nrows = 64\ncols = 64\n\
             tie-break = \"random\"\n[protocol]\nkind = \"state-broadcast\"\ntopology = \"relay\"\n\
             [workload]\nrate = 20.0\nkeys = 16\n[bounds]\nevents-max = 2000000\n",
        ),
        at_work_cap(
            "replicas-max-state-broadcast",
            "most replicas (10,000), state broadcast to all",
            "replicas = 10000\nduration = \"10s\"\n[protocol]\nkind = \"state-broadcast\"\n\
             [workload]\nrate = 1.0\n",
        ),
        case(
            "replicas-max-one-write",
            "most replicas, relay, one write",
            "replicas = 10000\nduration = \"10s\"\n[protocol]\nkind = \"state-broadcast\"\n\
             topology = \"relay\"\n[workload]\nrate = 0.0\n\
             ops = [{ at = \"1s\", replica = 0, key = 1, value = 7 }]\n",
        ),
        at_work_cap(
            "replicas-max-reliable-causal",
            "most replicas, reliable causal (a vector of every replica per message)",
            "replicas = 10000\nduration = \"100s\"\n[protocol]\nkind = \"reliable-causal\"\n\
             [workload]\nrate = 0.01\n",
        ),
        at_work_cap(
            "rate-max",
            "highest rate (RATE_MAX, 1,000,000 writes/s), op broadcast: updates-max reached",
            "replicas = 2\nduration = \"10s\"\n[protocol]\nkind = \"op-broadcast\"\n\
             [workload]\nrate = 1000000.0\n",
        ),
        at_work_cap(
            "replica-updates-max",
            "most writes: 1,000 replicas at RATE_MAX, replicas x updates at REPLICA_UPDATES_MAX",
            "replicas = 1000\nduration = \"1s\"\n[protocol]\nkind = \"op-broadcast\"\n\
             [workload]\nrate = 1000000.0\n",
        ),
        at_work_cap(
            "longest-duration",
            "longest virtual time (ten years, VIRTUAL_TIME_MAX), anti-entropy every 1 ms: events-max reached",
            "replicas = 3\nduration = \"87599h\"\nsettle = \"1h\"\n[protocol]\nkind = \"anti-entropy\"\n\
             interval = \"1ms\"\n[workload]\nrate = 0.001\n",
        ),
        at_work_cap(
            "dict-vast-keys-op-broadcast",
            "dictionary of a vast key space (4e9 keys), 4 replicas at a high rate: NODE_KEYS_MAX and the work cap",
            "replicas = 4\nduration = \"1000s\"\n[crdt]\nkind = \"lww-dict\"\n\
             [protocol]\nkind = \"op-broadcast\"\n[workload]\nrate = 1000.0\nkeys = 4000000000\n",
        ),
        at_work_cap(
            "dict-vast-keys-many-replicas",
            "dictionary, 1,000 replicas x 4,000 keys (NODE_KEYS_MAX), op broadcast",
            "replicas = 1000\nduration = \"100s\"\n[crdt]\nkind = \"lww-dict\"\n\
             [protocol]\nkind = \"op-broadcast\"\n[workload]\nrate = 100.0\nkeys = 4000\n",
        ),
        at_work_cap(
            "dict-keys-anti-entropy",
            "dictionary of 4,096 keys under anti-entropy every 1 ms: a whole-map merge per event",
            "replicas = 4\nduration = \"100h\"\n[crdt]\nkind = \"lww-dict\"\n\
             [protocol]\nkind = \"anti-entropy\"\ninterval = \"1ms\"\n\
             [workload]\nrate = 100.0\nkeys = 4096\n",
        ),
        at_work_cap(
            "list-anti-entropy",
            "list of about 4,000 elements (2,000 inserts in half a second), anti-entropy every 1 ms: a whole-list merge per event",
            "replicas = 4\nduration = \"100h\"\n[crdt]\nkind = \"rga\"\n\
             [protocol]\nkind = \"anti-entropy\"\ninterval = \"1ms\"\nfanout = 3\n\
             [workload]\nrate = 1000.0\nkeys = 4000000000\nstop = \"504ms\"\n",
        ),
        at_work_cap(
            "list-delta-sync",
            "list of about 4,000 elements, delta sync polling every 1 ms",
            "replicas = 4\nduration = \"100h\"\n[crdt]\nkind = \"rga\"\n\
             [protocol]\nkind = \"delta-sync\"\ninterval = \"1ms\"\n\
             [workload]\nrate = 1000.0\nkeys = 4000000000\nstop = \"504ms\"\n",
        ),
        at_work_cap(
            "list-many-replicas",
            "list, 980 replicas x 4,064 elements (NODE_LIST_ELEMENTS_MAX), op broadcast",
            "replicas = 980\nduration = \"20s\"\n[crdt]\nkind = \"rga\"\n\
             [protocol]\nkind = \"op-broadcast\"\n[workload]\nrate = 0.1\nkeys = 4000000000\n",
        ),
        at_work_cap(
            "in-flight-max",
            "most messages in flight (in-flight-max): 1,000 replicas, 10 s latency",
            "replicas = 1000\nduration = \"10s\"\nsettle = \"20s\"\n[protocol]\nkind = \"op-broadcast\"\n\
             [network]\nlatency = { kind = \"constant\", value = \"10s\" }\n\
             [workload]\nrate = 1000.0\n",
        ),
        at_work_cap(
            "duplicate-gossip",
            "heaviest duplication (every message twice), gossip to 1,000 peers with forwarding",
            "replicas = 1000\nduration = \"10s\"\n[protocol]\nkind = \"state-broadcast\"\n\
             topology = \"gossip\"\nfanout = 1000\n[network]\nduplicate = 1.0\n\
             [workload]\nrate = 10.0\n",
        ),
        at_work_cap(
            "reliable-causal-loss",
            "reliable causal, 1,000 replicas, half of all messages lost: retransmission timers",
            "replicas = 1000\nduration = \"10s\"\n[protocol]\nkind = \"reliable-causal\"\n\
             [network]\ndrop = 0.5\nsettle-drop = \"as-configured\"\n[workload]\nrate = 10.0\n",
        ),
        at_work_cap(
            "delta-sync-version-vector",
            "delta sync with version vectors, 1,000 replicas polling every 1 ms",
            "replicas = 1000\nduration = \"10s\"\n[protocol]\nkind = \"delta-sync\"\n\
             delta-position = \"version-vector\"\ninterval = \"1ms\"\n[workload]\nrate = 10.0\n",
        ),
    ];

    let mut links = String::new();
    for i in 0..converge::netsim::validation::LINKS_MAX {
        links.push_str(&format!(
            "[[network.links]]\nfrom = {}\nto = {}\ndrop = 0.01\n\
             latency = {{ kind = \"uniform\", min = \"1ms\", max = \"20ms\" }}\n",
            i % 64,
            (i / 64) % 64
        ));
    }
    cases.push(at_work_cap(
        "links-max",
        "most link overrides (LINKS_MAX, 4,096), 64 replicas",
        &format!(
            "replicas = 64\nduration = \"60s\"\n[protocol]\nkind = \"state-broadcast\"\n\
             [workload]\nrate = 10.0\n{links}"
        ),
    ));

    let mut faults = String::new();
    let members: Vec<String> = (0..100).map(|m| m.to_string()).collect();
    for i in 0..converge::netsim::validation::FAULTS_MAX {
        faults.push_str(&format!(
            "[[faults]]\nkind = \"partition\"\nat = \"{}ms\"\nheal = \"{}ms\"\ngroups = [[{}]]\n",
            i * 10,
            i * 10 + 5,
            members.join(",")
        ));
    }
    cases.push(at_work_cap(
        "faults-max",
        "most faults (FAULTS_MAX, 1,000 partitions) with the most group members (FAULT_GROUP_MEMBERS_MAX, 100,000)",
        &format!(
            "replicas = 101\nduration = \"20s\"\n[protocol]\nkind = \"state-broadcast\"\n\
             [workload]\nrate = 10.0\n{faults}"
        ),
    ));
    cases.push(at_work_cap(
        "swarm-max",
        "most swarm faults (SWARM_FAULTS_MAX, 1,000), loss and duplication up to 1",
        "replicas = 100\nduration = \"100s\"\n[protocol]\nkind = \"reliable-causal\"\n\
         [swarm]\nfaults = 1000\ndrop-max = 1.0\nduplicate-max = 1.0\n[workload]\nrate = 10.0\n",
    ));

    // As many explicit writes as a scenario file of SCENARIO_FILE_BYTES_MAX holds (OPS_MAX is
    // more than a file can carry).
    let mut ops = String::from("ops = [\n");
    let mut count = 0u64;
    while ops.len() < 7_900_000 {
        ops.push_str(&format!(
            "{{ at = \"{}us\", replica = {}, key = {}, value = 1 }},\n",
            count * 50 + 1,
            count % 8,
            count % 9
        ));
        count += 1;
    }
    ops.push_str("]\n");
    cases.push(at_work_cap(
        "ops-max-file",
        "most explicit writes a file holds (about 150,000 in SCENARIO_FILE_BYTES_MAX), 8 replicas",
        &format!(
            "replicas = 8\nduration = \"10s\"\n[protocol]\nkind = \"op-broadcast\"\n\
             [workload]\nrate = 0.0\n{ops}"
        ),
    ));
    cases.push(at_work_cap(
        "report-events-max",
        "the longest report a file may ask for: report-events-max at trace-events-kept-max (100,000)",
        "replicas = 20\nduration = \"60s\"\n[protocol]\nkind = \"op-broadcast\"\n\
         [network]\ndrop = 0.1\n[workload]\nrate = 20.0\n\
         [bounds]\nreport-events-max = 100000\n",
    ));
    cases
}

/// The text of a case, with `bounds.events-max` at the work cap (or `extra` above it).
fn text_of(case: &Case, extra: u64) -> String {
    if !case.at_work_cap {
        return case.text.clone();
    }
    let scenario = scenario_file::parse(&case.text, Format::Toml, case.name)
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let events_max = (RUN_WORK_MAX / scenario.event_work_max()).min(Bounds::default().events_max);
    let bounds = format!("events-max = {}\n", events_max + extra);
    match case.text.find("[bounds]\n") {
        Some(at) => {
            let at = at + "[bounds]\n".len();
            format!("{}{bounds}{}", &case.text[..at], &case.text[at..])
        }
        None => format!("{}[bounds]\n{bounds}", case.text),
    }
}

struct Measured {
    wall: Duration,
    peak_bytes: u64,
    status: i32,
}

/// Runs `converge run` on `file` and measures the child alone: wall time, and its peak resident
/// memory from `wait4`, which reports the rusage of that one child.
fn measure(file: &Path, out: &Path) -> Measured {
    let started = Instant::now();
    let log = std::fs::File::create(out.with_extension("log")).unwrap();
    // Reaped below by wait4, which std's wait cannot do: it drops the child's rusage.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_converge"))
        .arg("run")
        .arg(file)
        .args(["--seed", "0", "--out"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the converge binary runs");
    let pid = child.id() as libc::pid_t;
    loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our own child, not yet waited for; status and usage outlive the call.
        let waited = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if waited == pid {
            return Measured {
                wall: started.elapsed(),
                // Linux reports ru_maxrss in kilobytes.
                peak_bytes: usage.ru_maxrss as u64 * 1024,
                status: if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    -1
                },
            };
        }
        assert!(
            waited == 0,
            "wait4 failed: {}",
            std::io::Error::last_os_error()
        );
        if started.elapsed() > WALL_KILL {
            // SAFETY: signalling our own child, which has not been reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_accepted_worst_case_runs_within_a_minute_and_2_gib() {
    let Ok(wanted) = std::env::var("CONVERGE_WORST_CASES") else {
        eprintln!("worst cases skipped: set CONVERGE_WORST_CASES=1 (in release) to run them");
        return;
    };
    let wanted: Vec<&str> = wanted.split(',').filter(|n| *n != "1").collect();
    let dir = scratch("worst_cases");
    let mut failures = Vec::new();
    eprintln!("| case | input class | wall time | peak memory | exit |");
    eprintln!("|---|---|---|---|---|");
    for case in cases() {
        if !wanted.is_empty() && !wanted.contains(&case.name) {
            continue;
        }
        let text = text_of(&case, 0);
        scenario_file::parse_and_validate(&text, Format::Toml, case.name)
            .unwrap_or_else(|e| panic!("{} is accepted: {e}", case.name));
        if case.at_work_cap {
            let over = text_of(&case, 1);
            let events_max = Bounds::default().events_max;
            if !over.contains(&format!("events-max = {}\n", events_max + 1)) {
                let refused = scenario_file::parse_and_validate(&over, Format::Toml, case.name)
                    .expect_err("one event above the work cap is refused");
                assert!(
                    refused.to_string().contains("RUN_WORK_MAX"),
                    "{}: names the cap: {refused}",
                    case.name
                );
            }
        }
        let file = dir.join(format!("{}.toml", case.name));
        std::fs::write(&file, &text).unwrap();
        let out = dir.join(case.name);
        let measured = measure(&file, &out);
        eprintln!(
            "| {} | {} | {:.1} s | {} MiB | {} |",
            case.name,
            case.class,
            measured.wall.as_secs_f64(),
            measured.peak_bytes >> 20,
            measured.status
        );
        let report = out.join(format!("{}-seed0.json", case.name));
        let page = out.join(format!("{}-seed0.html", case.name));
        if measured.wall > WALL_MAX
            || measured.peak_bytes > PEAK_BYTES_MAX
            || !matches!(measured.status, 0 | 1)
            || !report.is_file()
            || !page.is_file()
        {
            failures.push(format!(
                "{}: {:.1} s, {} MiB, exit status {}, reports {}",
                case.name,
                measured.wall.as_secs_f64(),
                measured.peak_bytes >> 20,
                measured.status,
                if report.is_file() && page.is_file() {
                    "written"
                } else {
                    "missing"
                }
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "worst cases beyond 60 s, 2 GiB, or without their reports:\n{}",
        failures.join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
