//! The page's pictures, as inline SVG: the distinct-states chart with the run's landmarks, the
//! space-time diagram in virtual time (one window per slice of events, so that a long run stays
//! readable and the whole of it is there), and the faults as a timeline.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use converge_checker::RunReport;
use converge_netsim::{EventKind, FaultSpec, TraceEvent};

use super::exports::describe;
use super::{escape, node_count, node_name};

/// Events drawn in one window of the space-time diagram.
pub const SPACETIME_WINDOW_EVENTS: usize = 120;
/// Windows of the space-time diagram; events after the last one are left out, and the page says so.
pub const SPACETIME_WINDOWS_MAX: usize = 40;
/// Width the diagram's lanes share, in pixels: a run with many replicas gets narrow lanes.
const LANES_WIDTH: f64 = 1000.0;
/// Lifelines labelled at most (every k-th one beyond).
const LANE_LABELS_MAX: u32 = 25;

/// Virtual time for people: "850 ms", "1.25 s", "19.2 s", "2 min 5 s".
pub fn human_ms(ms: f64) -> String {
    if ms >= 120_000.0 {
        format!(
            "{} min {:.0} s",
            (ms / 60_000.0).floor(),
            (ms % 60_000.0) / 1e3
        )
    } else if ms >= 10_000.0 {
        format!("{:.1} s", ms / 1e3)
    } else if ms >= 1_000.0 {
        format!("{:.2} s", ms / 1e3)
    } else if ms >= 1.0 || ms == 0.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.0} µs", ms * 1e3)
    }
}

/// A landmark of the run drawn on the distinct-states chart.
struct Mark {
    at_ms: f64,
    label: String,
    colour: &'static str,
}

fn landmarks(report: &RunReport) -> Vec<Mark> {
    let spec = &report.scenario_spec;
    let mut marks: Vec<Mark> = report
        .faults
        .iter()
        .filter_map(|fault| match fault {
            FaultSpec::Join { at, replica } => Some(Mark {
                at_ms: at.as_ms_f64(),
                label: format!("r{replica} joins"),
                colour: "#8250df",
            }),
            _ => None,
        })
        .collect();
    let writes_end = spec.workload.stop.unwrap_or(spec.duration).as_ms_f64();
    marks.push(Mark {
        at_ms: writes_end,
        label: "writes end".into(),
        colour: "#57606a",
    });
    marks.push(Mark {
        at_ms: report.settle_start_ms,
        label: "settle starts".into(),
        colour: "#9a6700",
    });
    if let Some(at) = report.converged_at_ms.or(report.agreed_at_ms) {
        marks.push(Mark {
            at_ms: at,
            label: "converged".into(),
            colour: "#1a7f37",
        });
    }
    marks
}

/// The distinct-states chart: a step line of how many different states the live replicas hold,
/// with axis titles and the run's landmarks.
pub fn timeline_section(html: &mut String, report: &RunReport) {
    html.push_str("<section id=\"timeline\"><h2>Distinct replica states over virtual time</h2>\n");
    let (width, height, left, bottom, top, right) = (900.0, 260.0, 64.0, 46.0, 40.0, 16.0);
    let end_ms = report
        .end_ms
        .max(report.timeline.last().map_or(0.0, |p| p.0))
        .max(1.0);
    let max_states = report
        .timeline
        .iter()
        .map(|p| p.1)
        .max()
        .unwrap_or(1)
        .max(1);
    let x = |ms: f64| left + (ms.clamp(0.0, end_ms) / end_ms) * (width - left - right);
    let y = |n: u32| top + (1.0 - f64::from(n) / f64::from(max_states)) * (height - top - bottom);
    let _ = write!(
        html,
        "<svg id=\"timeline-chart\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" \
         role=\"img\" aria-label=\"distinct states over time\">"
    );
    let step = (max_states / 8).max(1);
    for n in (0..=max_states).step_by(step as usize) {
        let _ = write!(
            html,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eaeef2\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{n}</text>",
            width - right,
            left - 6.0,
            y(n) + 4.0,
            y = y(n)
        );
    }
    for tick in 0..=5 {
        let ms = end_ms * f64::from(tick) / 5.0;
        let _ = write!(
            html,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"{}\">{}</text>",
            x(ms),
            height - bottom + 16.0,
            if tick == 5 { "end" } else { "middle" },
            human_ms(ms)
        );
    }
    let _ = write!(
        html,
        "<text class=\"axis-title\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">virtual time</text>\
         <text class=\"axis-title\" transform=\"rotate(-90)\" x=\"{:.1}\" y=\"16\" text-anchor=\"middle\">distinct states</text>",
        left + (width - left - right) / 2.0,
        height - 6.0,
        -(top + (height - top - bottom) / 2.0)
    );
    let mut marks = landmarks(report);
    marks.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    // Labels that would overlap go on the next of three rows above the plot.
    let mut row_ends = [f64::MIN; 3];
    for mark in &marks {
        let width = 6.5 * mark.label.len() as f64;
        let start = x(mark.at_ms) - width / 2.0;
        let row = row_ends.iter().position(|end| *end < start).unwrap_or(2);
        row_ends[row] = start + width + 4.0;
        let _ = write!(
            html,
            "<g class=\"mark\"><line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{top}\" y2=\"{}\" stroke=\"{c}\" stroke-dasharray=\"4 3\"/>\
             <text x=\"{:.1}\" y=\"{}\" fill=\"{c}\" text-anchor=\"middle\">{}</text></g>",
            height - bottom,
            x(mark.at_ms),
            12 + 12 * row,
            escape(&mark.label),
            x = x(mark.at_ms),
            c = mark.colour
        );
    }
    let mut path = String::new();
    for (i, &(ms, n)) in report.timeline.iter().enumerate() {
        let command = if i == 0 { "M" } else { " H" };
        let _ = write!(
            path,
            "{command}{:.1}{}{:.1}",
            x(ms),
            if i == 0 { "," } else { " V" },
            y(n)
        );
    }
    if !path.is_empty() {
        let _ = write!(
            html,
            "<path d=\"{path} H{:.1}\" fill=\"none\" stroke=\"#0969da\" stroke-width=\"2\"/>",
            x(end_ms)
        );
    }
    html.push_str("</svg>");
    let _ = writeln!(
        html,
        "<p class=\"muted\">How many different states the live replicas hold (1 = agreement). <b>Converged</b> marks \
         the moment from which every live replica held the same state and kept holding it to the end of the run \
         (a later disagreement moves it). <b>Writes end</b> is when generated writes stop, <b>settle starts</b> when \
         writes and faults are over and the network only delivers what is left. {} change points{}.</p></section>",
        report.timeline.len(),
        if report.timeline.is_empty() { "; nothing changed" } else { "" }
    );
}

/// The events the space-time diagram draws (timers and duplicate notices are left out).
fn drawn_events(trace: &[TraceEvent]) -> Vec<&TraceEvent> {
    trace
        .iter()
        .filter(|e| {
            !matches!(
                e.kind,
                EventKind::Timer { .. } | EventKind::Duplicate { .. }
            )
        })
        .collect()
}

/// The space-time diagram of `trace` (of the run in `report`): one vertical lifeline per node,
/// virtual time flowing down, in windows of [`SPACETIME_WINDOW_EVENTS`] events, the first open.
pub fn spacetime_section(
    html: &mut String,
    report: &RunReport,
    trace: &[TraceEvent],
    caption: &str,
) {
    let drawn = drawn_events(trace);
    let windows: Vec<&[&TraceEvent]> = drawn
        .chunks(SPACETIME_WINDOW_EVENTS)
        .take(SPACETIME_WINDOWS_MAX)
        .collect();
    let shown: usize = windows.iter().map(|w| w.len()).sum();
    let mut missing = Vec::new();
    if shown < drawn.len() {
        missing.push(format!(
            "the diagram stops after {shown} of the {} events kept",
            drawn.len()
        ));
    }
    if report.trace_truncated {
        missing.push(format!(
            "the report keeps the first {} of the run's {} events (bounds.report-events-max)",
            report.trace.len(),
            report.events
        ));
    }
    let _ = writeln!(
        html,
        "<section id=\"spacetime\"><h2>Space-time diagram</h2><p class=\"muted\">Of {}: {} events in {} \
         of virtual time{}.</p>",
        escape(caption),
        shown,
        if windows.len() == 1 { "one window".to_string() } else { format!("{} windows", windows.len()) },
        if missing.is_empty() { String::new() } else { format!(" (<span class=\"cap\">{}</span>)", escape(&missing.join("; "))) }
    );
    legend(html);
    let mut sends: BTreeMap<u64, (u32, u64)> = BTreeMap::new();
    for (i, window) in windows.iter().enumerate() {
        let (from, to) = (window[0].at_us, window[window.len() - 1].at_us);
        let _ = write!(
            html,
            "<details class=\"window\"{}><summary>{} to {} (events {} to {})</summary>",
            if i == 0 { " open" } else { "" },
            human_ms(from as f64 / 1e3),
            human_ms(to as f64 / 1e3),
            window[0].index,
            window[window.len() - 1].index
        );
        draw_window(html, report, window, &mut sends);
        html.push_str("</details>");
    }
    html.push_str("</section>\n");
}

fn legend(html: &mut String) {
    html.push_str(
        "<p class=\"legend\"><span style=\"color:#1a7f37\">&#9472;&#9654; delivery that changed the receiver's state</span> \
         <span style=\"color:#8c959f\">&#9472;&#9654; delivery that changed nothing</span> \
         <span style=\"color:#cf222e\">&#9476;&#10005; lost message (the x sits on the lifeline it never reached)</span> \
         <span style=\"color:#0969da\">&#9679; write</span> <span style=\"color:#57606a\">&#8226; send</span> \
         <span style=\"color:#8250df\">&#9632; crash, restart, join, leave</span> \
         <span style=\"color:#9a6700\">&#9476; fault starts (f+) or ends (f-), settle</span></p>",
    );
}

/// The geometry of one window: lanes across, virtual time down.
struct Frame {
    nodes: u32,
    lane_width: f64,
    top: f64,
    height: f64,
    from_us: u64,
    span_us: f64,
}

impl Frame {
    const LEFT: f64 = 44.0;

    fn lane_x(&self, node: u32) -> f64 {
        Self::LEFT + self.lane_width * (f64::from(node) + 0.5)
    }

    fn y(&self, at_us: u64) -> f64 {
        let fraction = at_us.saturating_sub(self.from_us) as f64 / self.span_us;
        self.top + fraction.clamp(0.0, 1.0) * (self.height - self.top - 12.0)
    }

    fn width(&self) -> f64 {
        Self::LEFT + self.lane_width * f64::from(self.nodes) + 10.0
    }
}

fn draw_window(
    html: &mut String,
    report: &RunReport,
    window: &[&TraceEvent],
    sends: &mut BTreeMap<u64, (u32, u64)>,
) {
    let nodes = node_count(report).max(1);
    let from_us = window[0].at_us;
    let span_us = (window[window.len() - 1].at_us - from_us).max(1) as f64;
    let frame = Frame {
        nodes,
        lane_width: (LANES_WIDTH / f64::from(nodes)).clamp(6.0, 110.0),
        top: 40.0,
        height: 40.0 + (window.len() as f64 * 9.0).clamp(160.0, 900.0),
        from_us,
        span_us,
    };
    let width = frame.width();
    let _ = write!(
        html,
        "<svg class=\"spacetime-diagram\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width:.0} {h:.0}\" \
         width=\"{width:.0}\" role=\"img\" aria-label=\"space-time diagram\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" \
         orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#57606a\"/></marker></defs>",
        h = frame.height
    );
    let label_every = nodes.div_ceil(LANE_LABELS_MAX).max(1);
    for node in 0..nodes {
        let x = frame.lane_x(node);
        if node % label_every == 0 {
            let _ = write!(
                html,
                "<text x=\"{x:.1}\" y=\"18\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>",
                escape(&node_name(report, node))
            );
        }
        let _ = write!(
            html,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"28\" y2=\"{:.1}\" stroke=\"#d0d7de\"/>",
            frame.height - 6.0
        );
    }
    for event in window {
        draw_event(html, report, &frame, event, sends);
    }
    html.push_str("</svg>");
}

fn draw_event(
    html: &mut String,
    report: &RunReport,
    frame: &Frame,
    event: &TraceEvent,
    sends: &mut BTreeMap<u64, (u32, u64)>,
) {
    let y = frame.y(event.at_us);
    let title = escape(&format!(
        "#{} at {}: {}",
        event.index,
        human_ms(event.at_us as f64 / 1e3),
        describe(report, event)
    ));
    // A message sent before this window starts at the window's top edge.
    let start_y = |sent_at: u64| {
        if sent_at < frame.from_us {
            frame.top - 6.0
        } else {
            frame.y(sent_at)
        }
    };
    match event.kind {
        EventKind::Write { replica, .. } => {
            let _ = write!(
                html,
                "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"#0969da\"><title>{title}</title></circle>",
                frame.lane_x(replica)
            );
        }
        EventKind::Send { from, message, .. } => {
            sends.insert(message, (from, event.at_us));
            let _ = write!(
                html,
                "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"1.8\" fill=\"#57606a\"><title>{title}</title></circle>",
                frame.lane_x(from)
            );
        }
        EventKind::Deliver {
            from,
            to,
            message,
            changed,
        } => {
            let (sender, sent_at) = sends.get(&message).copied().unwrap_or((from, event.at_us));
            let colour = if changed { "#1a7f37" } else { "#8c959f" };
            let _ = write!(
                html,
                "<line class=\"deliver\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\" \
                 marker-end=\"url(#arrow)\"><title>{title}</title></line>",
                frame.lane_x(sender),
                start_y(sent_at),
                frame.lane_x(to)
            );
        }
        EventKind::Drop {
            from, to, message, ..
        } => {
            let (sender, sent_at) = sends.get(&message).copied().unwrap_or((from, event.at_us));
            let (x1, x2) = (frame.lane_x(sender), frame.lane_x(to));
            let _ = write!(
                html,
                "<g class=\"drop\" data-to=\"{to}\"><title>{title}</title><line x1=\"{x1:.1}\" y1=\"{:.1}\" x2=\"{x2:.1}\" \
                 y2=\"{y:.1}\" stroke=\"#cf222e\" stroke-dasharray=\"3 2\"/>\
                 <path d=\"M{:.1},{:.1} l8,8 m0,-8 l-8,8\" stroke=\"#cf222e\" stroke-width=\"2\"/></g>",
                start_y(sent_at),
                x2 - 4.0,
                y - 4.0
            );
        }
        EventKind::Crash { replica }
        | EventKind::Restart { replica }
        | EventKind::Join { replica }
        | EventKind::Leave { replica } => {
            let _ = write!(
                html,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"9\" height=\"9\" fill=\"#8250df\"><title>{title}</title></rect>",
                frame.lane_x(replica) - 4.5,
                y - 4.5
            );
        }
        EventKind::FaultStart { .. } | EventKind::FaultEnd { .. } | EventKind::SettleStart => {
            let label = match event.kind {
                EventKind::FaultStart { fault } => format!("f{fault}+"),
                EventKind::FaultEnd { fault } => format!("f{fault}-"),
                _ => "settle".to_string(),
            };
            let _ = write!(
                html,
                "<line x1=\"36\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#bf8700\" stroke-dasharray=\"2 4\">\
                 <title>{title}</title></line><text x=\"2\" y=\"{:.1}\" fill=\"#9a6700\">{label}</text>",
                frame.width() - 10.0,
                y + 4.0
            );
        }
        EventKind::Timer { .. } | EventKind::Duplicate { .. } => {}
    }
}

/// A fault in words, with its times in human units.
pub fn describe_fault(fault: &FaultSpec) -> String {
    let at = |d: &converge_netsim::SimDuration| human_ms(d.as_ms_f64());
    let until = |heal: &Option<converge_netsim::SimDuration>, word: &str| {
        heal.as_ref().map_or(format!(", never {word}"), |h| {
            format!(", {word} at {}", at(h))
        })
    };
    let groups = |groups: &[Vec<u32>]| {
        groups
            .iter()
            .map(|g| {
                format!(
                    "{{{}}}",
                    g.iter()
                        .map(|r| format!("r{r}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    match fault {
        FaultSpec::Partition {
            at: t,
            heal,
            groups: g,
            direction,
        } => format!(
            "partition {} ({}) at {}{}",
            groups(g),
            match direction {
                converge_netsim::Direction::Both => "both ways",
                converge_netsim::Direction::OneWay =>
                    "one way: the first group's messages are lost",
            },
            at(t),
            until(heal, "heals")
        ),
        FaultSpec::Isolate {
            at: t,
            heal,
            replica,
        } => format!("r{replica} isolated at {}{}", at(t), until(heal, "heals")),
        FaultSpec::Bridge {
            at: t,
            heal,
            groups: g,
            bridge,
        } => {
            format!(
                "groups {} joined only through r{bridge} at {}{}",
                groups(g),
                at(t),
                until(heal, "heals")
            )
        }
        FaultSpec::Crash {
            at: t,
            replica,
            restart,
            state,
        } => format!(
            "r{replica} crashes at {} ({} state){}",
            at(t),
            match state {
                converge_netsim::Durability::Durable => "durable",
                converge_netsim::Durability::Volatile => "volatile",
            },
            until(restart, "restarts")
        ),
        FaultSpec::Join { at: t, replica } => format!("r{replica} joins late, at {}", at(t)),
        FaultSpec::Leave { at: t, replica } => format!("r{replica} leaves for good at {}", at(t)),
        FaultSpec::ClockSkew {
            replica,
            offset_us,
            drift_ppm,
        } => format!(
            "r{replica}'s clock is off by {}{} and drifts {drift_ppm} ppm",
            if *offset_us < 0 { "-" } else { "+" },
            human_ms(offset_us.unsigned_abs() as f64 / 1e3)
        ),
        FaultSpec::ServerOutage { at: t, until: u } => {
            format!("relay server down from {} to {}", at(t), at(u))
        }
        FaultSpec::ConnectionDrop {
            at: t,
            nodes: [a, b],
            reconnect,
        } => format!(
            "connection n{a}-n{b} drops at {} (what is in flight on it is lost){}",
            at(t),
            until(reconnect, "reconnects")
        ),
    }
}

/// When a fault is in force: `(start, end)` in ms, the end `None` when it lasts to the end.
fn fault_span(fault: &FaultSpec) -> Option<(f64, Option<f64>)> {
    let ms = |d: &converge_netsim::SimDuration| d.as_ms_f64();
    match fault {
        FaultSpec::Partition { at, heal, .. }
        | FaultSpec::Isolate { at, heal, .. }
        | FaultSpec::Bridge { at, heal, .. } => Some((ms(at), heal.as_ref().map(ms))),
        FaultSpec::Crash { at, restart, .. } => Some((ms(at), restart.as_ref().map(ms))),
        FaultSpec::Join { at, .. } => Some((0.0, Some(ms(at)))),
        FaultSpec::Leave { at, .. } => Some((ms(at), None)),
        FaultSpec::ServerOutage { at, until } => Some((ms(at), Some(ms(until)))),
        FaultSpec::ConnectionDrop { at, reconnect, .. } => {
            Some((ms(at), reconnect.as_ref().map(ms)))
        }
        FaultSpec::ClockSkew { .. } => None,
    }
}

/// The faults as a timeline: one bar per fault over the run's virtual time, and the list in words.
pub fn faults_section(html: &mut String, report: &RunReport) {
    html.push_str("<section id=\"faults\"><h2>Faults in force</h2>");
    swarm_note(html, report);
    if report.faults.is_empty() {
        html.push_str("<p>None scheduled.</p></section>\n");
        return;
    }
    let end_ms = report.end_ms.max(1.0);
    let (width, left, row) = (900.0, 64.0, 18.0);
    let height = 34.0 + row * report.faults.len() as f64;
    let x = |ms: f64| left + (ms.clamp(0.0, end_ms) / end_ms) * (width - left - 16.0);
    let _ = write!(
        html,
        "<svg id=\"faults-chart\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" \
         role=\"img\" aria-label=\"faults over time\">"
    );
    for (i, fault) in report.faults.iter().enumerate() {
        let y = 8.0 + row * i as f64;
        let _ = write!(html, "<text x=\"4\" y=\"{:.1}\">fault {i}</text>", y + 11.0);
        if let Some((start, end)) = fault_span(fault) {
            let (x1, x2) = (x(start), x(end.unwrap_or(end_ms)));
            let _ = write!(
                html,
                "<rect x=\"{x1:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"13\" fill=\"#fff1c2\" stroke=\"#bf8700\">\
                 <title>{}</title></rect>",
                (x2 - x1).max(2.0),
                escape(&describe_fault(fault))
            );
        }
    }
    for tick in 0..=5 {
        let ms = end_ms * f64::from(tick) / 5.0;
        let _ = write!(
            html,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{}\">{}</text>",
            x(ms),
            height - 6.0,
            if tick == 5 { "end" } else { "middle" },
            human_ms(ms)
        );
    }
    html.push_str("</svg><ol start=\"0\">");
    for fault in &report.faults {
        let _ = write!(html, "<li>{}</li>", escape(&describe_fault(fault)));
    }
    html.push_str("</ol></section>\n");
}

/// What swarm mode drew for this seed: the network's loss and duplication, and how many faults.
fn swarm_note(html: &mut String, report: &RunReport) {
    if let Some(swarm) = &report.scenario_spec.swarm {
        let _ = write!(
            html,
            "<p id=\"swarm\">Swarm mode drew, for this seed: drop probability <b>{:.3}</b> (up to {}), duplicate \
             probability <b>{:.3}</b> (up to {}), and {} faults on top of the scenario's own (all listed below).</p>",
            report.network_drop,
            swarm.drop_max,
            report.network_duplicate,
            swarm.duplicate_max,
            swarm.faults
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_in_human_units() {
        assert_eq!(human_ms(19_238.045), "19.2 s");
        assert_eq!(human_ms(1_250.0), "1.25 s");
        assert_eq!(human_ms(850.0), "850 ms");
        assert_eq!(human_ms(0.25), "250 µs");
        assert_eq!(human_ms(125_000.0), "2 min 5 s");
    }

    #[test]
    fn faults_are_described_in_words() {
        let fault = FaultSpec::Partition {
            at: converge_netsim::SimDuration { us: 2_000_000 },
            heal: Some(converge_netsim::SimDuration { us: 19_238_045 }),
            groups: vec![vec![0, 1]],
            direction: converge_netsim::Direction::Both,
        };
        assert_eq!(
            describe_fault(&fault),
            "partition {r0, r1} (both ways) at 2.00 s, heals at 19.2 s"
        );
    }
}
