//! Trace exports for viewers people already have.
//!
//! - [`chrome_trace`]: Chrome trace event JSON, which Perfetto (ui.perfetto.dev) and
//!   chrome://tracing open. One thread per node; writes, sends, deliveries and drops are slices or
//!   instants; every delivery is a flow arrow (`"s"` at the send, `"f"` at the delivery). Times are
//!   virtual microseconds.
//! - [`shiviz_log`]: a ShiViz log: the parser regex on the first line, an empty execution
//!   delimiter on the second, then per event a description line and a `host {vector clock}` line.
//!   The vector clocks are computed from the trace's send and deliver pairs.

use std::collections::BTreeMap;

use converge_checker::RunReport;
use converge_netsim::{EventKind, NodeId, TraceEvent};
use serde_json::{json, Value};

use super::node_name;

/// The nodes an event happens at (sender first for messages).
pub fn nodes_of(kind: &EventKind) -> Vec<NodeId> {
    match *kind {
        EventKind::Write { replica, .. }
        | EventKind::Crash { replica }
        | EventKind::Restart { replica }
        | EventKind::Join { replica }
        | EventKind::Leave { replica } => vec![replica],
        EventKind::Send { from, to, .. }
        | EventKind::Deliver { from, to, .. }
        | EventKind::Drop { from, to, .. }
        | EventKind::Duplicate { from, to, .. } => vec![from, to],
        EventKind::Timer { node } => vec![node],
        EventKind::FaultStart { .. } | EventKind::FaultEnd { .. } | EventKind::SettleStart => {
            Vec::new()
        }
    }
}

/// The node an event is logged at: the writer, the sender of a send, the receiver of a delivery.
fn host_of(kind: &EventKind) -> Option<NodeId> {
    match *kind {
        EventKind::Send { from, .. }
        | EventKind::Drop { from, .. }
        | EventKind::Duplicate { from, .. } => Some(from),
        EventKind::Deliver { to, .. } => Some(to),
        _ => nodes_of(kind).first().copied(),
    }
}

/// A short description of an event.
pub fn describe(report: &RunReport, event: &TraceEvent) -> String {
    let name = |node: NodeId| node_name(report, node);
    match &event.kind {
        EventKind::Write {
            replica,
            update,
            key,
        } => {
            format!(
                "{} writes key {key} (update {}.{})",
                name(*replica),
                update.origin,
                update.seq
            )
        }
        EventKind::Send {
            from,
            to,
            message,
            bytes,
        } => {
            format!(
                "{} sends message {message} to {} ({bytes} bytes)",
                name(*from),
                name(*to)
            )
        }
        EventKind::Deliver {
            from,
            to,
            message,
            changed,
        } => format!(
            "{} delivers message {message} from {}{}",
            name(*to),
            name(*from),
            if *changed { " (state changed)" } else { "" }
        ),
        EventKind::Drop {
            from,
            to,
            message,
            cause,
        } => format!(
            "message {message} from {} to {} lost ({})",
            name(*from),
            name(*to),
            serde_json::to_value(cause)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ),
        EventKind::Duplicate { from, to, message } => {
            format!(
                "message {message} from {} to {} duplicated",
                name(*from),
                name(*to)
            )
        }
        EventKind::FaultStart { fault } => format!("fault {fault} starts"),
        EventKind::FaultEnd { fault } => format!("fault {fault} ends"),
        EventKind::Crash { replica } => format!("{} crashes", name(*replica)),
        EventKind::Restart { replica } => format!("{} restarts", name(*replica)),
        EventKind::Join { replica } => format!("{} joins", name(*replica)),
        EventKind::Leave { replica } => format!("{} leaves", name(*replica)),
        EventKind::Timer { node } => format!("{} timer", name(*node)),
        EventKind::SettleStart => "settle period begins".to_string(),
    }
}

/// The trace as Chrome trace event JSON.
pub fn chrome_trace(report: &RunReport) -> String {
    const PID: u32 = 1;
    let tid = |node: NodeId| node + 1;
    let mut events: Vec<Value> = Vec::new();
    events.push(
        json!({"ph": "M", "name": "process_name", "pid": PID, "tid": 0,
        "args": {"name": format!("{} seed {}", report.scenario, report.seed)}}),
    );
    for node in 0..super::node_count(report) {
        events.push(
            json!({"ph": "M", "name": "thread_name", "pid": PID, "tid": tid(node),
            "args": {"name": node_name(report, node)}}),
        );
        events.push(
            json!({"ph": "M", "name": "thread_sort_index", "pid": PID, "tid": tid(node),
            "args": {"sort_index": node}}),
        );
    }
    let mut sent_at: BTreeMap<u64, (NodeId, u64)> = BTreeMap::new();
    for event in &report.trace {
        let ts = event.at_us;
        let args = json!({"event": event.index, "what": describe(report, event)});
        match event.kind {
            EventKind::Write { replica, key, .. } => events.push(json!({"ph": "X", "name": format!("write key {key}"),
                "cat": "write", "pid": PID, "tid": tid(replica), "ts": ts, "dur": 1, "args": args})),
            EventKind::Send { from, message, .. } => {
                sent_at.insert(message, (from, ts));
                events.push(json!({"ph": "X", "name": format!("send {message}"), "cat": "message",
                    "pid": PID, "tid": tid(from), "ts": ts, "dur": 1, "args": args}));
            }
            EventKind::Deliver { from, to, message, .. } => {
                events.push(json!({"ph": "X", "name": format!("deliver {message}"), "cat": "message",
                    "pid": PID, "tid": tid(to), "ts": ts, "dur": 1, "args": args}));
                // One flow per delivery (a duplicated message is delivered twice), keyed by the
                // delivery's event index so that flow ids never collide.
                let (sender, sent_ts) = sent_at.get(&message).copied().unwrap_or((from, ts));
                events.push(json!({"ph": "s", "name": "message", "cat": "message", "id": event.index,
                    "pid": PID, "tid": tid(sender), "ts": sent_ts}));
                events.push(json!({"ph": "f", "bp": "e", "name": "message", "cat": "message",
                    "id": event.index, "pid": PID, "tid": tid(to), "ts": ts}));
            }
            EventKind::Drop { to, message, .. } => events.push(json!({"ph": "i", "s": "t",
                "name": format!("drop {message}"), "cat": "fault", "pid": PID, "tid": tid(to), "ts": ts, "args": args})),
            _ => {
                let host = host_of(&event.kind);
                events.push(json!({"ph": "i", "s": if host.is_some() { "t" } else { "g" },
                    "name": describe(report, event), "cat": "event", "pid": PID,
                    "tid": host.map_or(0, tid), "ts": ts, "args": args}));
            }
        }
    }
    if let Some(note) = truncation_note(report) {
        // A global marker where the export stops, so that nobody reads the quiet after it as the run's.
        let ts = report.trace.last().map_or(0, |e| e.at_us);
        events.push(json!({"ph": "i", "s": "g", "name": note, "cat": "truncated", "pid": PID, "tid": 0,
            "ts": ts, "args": {"events_exported": report.trace.len(), "events_in_run": report.events}}));
    }
    let document = json!({
        "displayTimeUnit": "ms",
        "otherData": {"scenario": report.scenario, "seed": report.seed, "trace_hash": report.trace_hash,
            "verdict": report.verdict, "truncated": report.trace_truncated,
            "events_exported": report.trace.len(), "events_in_run": report.events,
            "truncation": truncation_note(report)},
        "traceEvents": events,
    });
    serde_json::to_string(&document).unwrap_or_default()
}

/// Why an export stops short of the run, when it does.
pub fn truncation_note(report: &RunReport) -> Option<String> {
    report.trace_truncated.then(|| {
        format!(
            "trace truncated: the first {} of the run's {} events are exported (bounds.report-events-max)",
            report.trace.len(),
            report.events
        )
    })
}

/// The ShiViz parser regex: an event line, then `host {clock}`.
pub const SHIVIZ_REGEX: &str = r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})";

/// The trace as a ShiViz log with vector clocks.
pub fn shiviz_log(report: &RunReport) -> String {
    let mut clocks: BTreeMap<NodeId, BTreeMap<String, u64>> = BTreeMap::new();
    let mut sent: BTreeMap<u64, BTreeMap<String, u64>> = BTreeMap::new();
    let mut out = format!("{SHIVIZ_REGEX}\n\n");
    for event in &report.trace {
        let Some(host) = host_of(&event.kind) else {
            continue;
        };
        let host_name = node_name(report, host);
        let clock = clocks.entry(host).or_default();
        if let EventKind::Deliver { message, .. } = event.kind {
            if let Some(sender_clock) = sent.get(&message) {
                for (node, time) in sender_clock {
                    let mine = clock.entry(node.clone()).or_default();
                    *mine = (*mine).max(*time);
                }
            }
        }
        *clock.entry(host_name.clone()).or_default() += 1;
        if let EventKind::Send { message, .. } = event.kind {
            sent.insert(message, clock.clone());
        }
        let clock_json = serde_json::to_string(&*clock).unwrap_or_default();
        let what = describe(report, event).replace('\n', " ");
        out.push_str(&format!(
            "{what} @ {} us\n{host_name} {clock_json}\n",
            event.at_us
        ));
    }
    // ShiViz has no comments: the truncation is a last event, on the host of the last one.
    if let (Some(note), Some(host)) = (
        truncation_note(report),
        report.trace.iter().rev().find_map(|e| host_of(&e.kind)),
    ) {
        let host_name = node_name(report, host);
        let clock = clocks.entry(host).or_default();
        *clock.entry(host_name.clone()).or_default() += 1;
        let clock_json = serde_json::to_string(&*clock).unwrap_or_default();
        out.push_str(&format!("{note}\n{host_name} {clock_json}\n"));
    }
    out
}
