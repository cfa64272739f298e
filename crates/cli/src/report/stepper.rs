//! The counterexample stepper: the minimal counterexample (or, without one, the start of the run)
//! event by event, with each replica's state, the messages in flight and the moment an oracle
//! fails. The run is replayed, deterministically, by [`converge_checker::steps`], which shows
//! each event with the state of every replica it touched; the page carries those steps as JSON
//! and a small script (inline: the page fetches nothing) that shows any step. `#step=K` in the
//! address opens step K.

use std::fmt::Write as _;

use converge_checker::steps::{replay_steps, ReplicaStep, StepWatch};
use converge_checker::RunReport;
use converge_crdt::ReplicaId;
use converge_netsim::{EventKind, Scenario, Status, TraceEvent};
use serde::Serialize;
use serde_json::Value;

use super::charts::human_ms;
use super::exports::describe;
use super::{escape, node_name};

/// Events the stepper steps through at most; a longer run is cut there, and the page says so.
pub const STEPPER_EVENTS_MAX: usize = 400;
/// Cells and keys of the replicas' states the stepper reads in all: a run of large states stops
/// earlier than [`STEPPER_EVENTS_MAX`], so that a page is written in a time and a size linear in
/// what it shows.
pub const STEPPER_STATE_VALUES_MAX: usize = 2_000_000;
/// Characters of one replica's state shown at most.
const STATE_TEXT_MAX: usize = 600;
/// Cells of a grid shown as rows; a larger grid shows its written cells only.
const GRID_ROWS_CELLS_MAX: usize = 64;

/// One replica as the stepper shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ReplicaState {
    pub replica: ReplicaId,
    pub status: &'static str,
    pub delivered: u32,
    pub state: String,
}

/// One event, and the replicas it changed.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub event: u64,
    pub at: String,
    pub what: String,
    /// `send`, `deliver`, `drop`, `duplicate` or `other`: what the script does with `message`.
    pub kind: &'static str,
    pub message: Option<u64>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub replicas: Vec<ReplicaState>,
}

/// The step at which the first oracle fails.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub step: usize,
    pub oracle: String,
    pub detail: String,
}

/// Everything the stepper shows.
#[derive(Clone, Debug, Serialize)]
pub struct Steps {
    pub caption: String,
    pub initial: Vec<ReplicaState>,
    pub steps: Vec<Step>,
    pub failure: Option<Failure>,
    /// Whether the run had more events than the stepper holds.
    pub cut: bool,
}

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Waiting => "not joined yet",
        Status::Up => "up",
        Status::Crashed => "crashed",
        Status::Left => "left",
    }
}

/// A replica's view as a few lines of text: a small grid as rows, a large one by its written
/// cells, a dictionary as `key = value` pairs, a list as its values in order, anything else as
/// JSON.
pub fn state_text(view: &Value) -> String {
    let mut text = match (
        view.get("rows").and_then(Value::as_u64),
        view.get("cols").and_then(Value::as_u64),
        view.get("cells").and_then(Value::as_array),
    ) {
        (Some(_), Some(cols), Some(cells)) if cells.len() <= GRID_ROWS_CELLS_MAX => {
            // Every cell as wide as the widest, so that the columns line up.
            let texts: Vec<String> = cells.iter().map(cell).collect();
            let width = texts.iter().map(|t| t.chars().count()).max().unwrap_or(1);
            texts
                .chunks(cols.max(1) as usize)
                .map(|row| {
                    row.iter()
                        .map(|t| format!("{t:>width$}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
        (Some(_), Some(cols), Some(cells)) => {
            let written: Vec<String> = cells
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_null())
                .map(|(i, v)| {
                    format!(
                        "({}, {}) = {}",
                        i as u64 / cols.max(1),
                        i as u64 % cols.max(1),
                        cell(v)
                    )
                })
                .collect();
            if written.is_empty() {
                "(every cell empty)".to_string()
            } else {
                written.join(", ")
            }
        }
        _ => match view.as_object() {
            Some(map) if map.is_empty() => "(empty)".to_string(),
            Some(map) => map
                .iter()
                .map(|(k, v)| format!("{k} = {}", cell(v)))
                .collect::<Vec<_>>()
                .join(", "),
            None => match view.as_array() {
                Some(items) if items.is_empty() => "(empty list)".to_string(),
                Some(items) if items.iter().all(|v| !v.is_array() && !v.is_object()) => {
                    items.iter().map(cell).collect::<Vec<_>>().join(" ")
                }
                _ => view.to_string(),
            },
        },
    };
    if text.chars().count() > STATE_TEXT_MAX {
        text = text.chars().take(STATE_TEXT_MAX).collect::<String>() + " …";
    }
    text
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "·".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Writes down every step, and stops the run once the stepper is full.
struct StepRecorder<'a> {
    report: &'a RunReport,
    steps: Vec<Step>,
    cut: bool,
    /// Cells and keys read so far, against [`STEPPER_STATE_VALUES_MAX`].
    values: usize,
}

/// How many cells, keys or list elements a view holds.
fn view_size(view: &Value) -> usize {
    match (view.get("cells").and_then(Value::as_array), view.as_array()) {
        (Some(cells), _) | (None, Some(cells)) => cells.len(),
        (None, None) => view.as_object().map_or(1, serde_json::Map::len),
    }
}

impl StepWatch for StepRecorder<'_> {
    fn on_event(&mut self, event: &TraceEvent, touched: Vec<ReplicaStep>) -> bool {
        if matches!(event.kind, EventKind::Timer { .. }) {
            return true;
        }
        self.values += touched.iter().map(|r| view_size(&r.view)).sum::<usize>();
        if self.steps.len() == STEPPER_EVENTS_MAX || self.values > STEPPER_STATE_VALUES_MAX {
            self.cut = true;
            return false;
        }
        let replicas = touched.iter().map(replica_state).collect();
        self.steps.push(step_of(self.report, event, replicas));
        true
    }
}

fn replica_state(step: &ReplicaStep) -> ReplicaState {
    ReplicaState {
        replica: step.replica,
        status: status_word(step.status),
        delivered: step.delivered,
        state: state_text(&step.view),
    }
}

fn step_of(report: &RunReport, event: &TraceEvent, replicas: Vec<ReplicaState>) -> Step {
    let (kind, message, from, to) = match event.kind {
        EventKind::Send {
            from, to, message, ..
        } => ("send", Some(message), Some(from), Some(to)),
        EventKind::Deliver {
            from, to, message, ..
        } => ("deliver", Some(message), Some(from), Some(to)),
        EventKind::Drop {
            from, to, message, ..
        } => ("drop", Some(message), Some(from), Some(to)),
        EventKind::Duplicate { from, to, message } => {
            ("duplicate", Some(message), Some(from), Some(to))
        }
        _ => ("other", None, None, None),
    };
    Step {
        event: event.index,
        at: human_ms(event.at_us as f64 / 1e3),
        what: describe(report, event),
        kind,
        message,
        from: from.map(|n| node_name(report, n)),
        to: to.map(|n| node_name(report, n)),
        replicas,
    }
}

/// Replays `scenario` with `seed` (the run `report` describes) and writes down its steps.
pub fn steps_of(
    report: &RunReport,
    scenario: &Scenario,
    seed: u64,
    caption: String,
) -> Option<Steps> {
    let mut recorder = StepRecorder {
        report,
        steps: Vec::new(),
        cut: false,
        values: 0,
    };
    let initial = replay_steps(scenario, seed, &mut recorder).ok()?;
    let failure = first_failure(report, &recorder.steps);
    Some(Steps {
        caption,
        initial: initial.iter().map(replica_state).collect(),
        steps: recorder.steps,
        failure,
        cut: recorder.cut,
    })
}

/// The step after which the first violation was seen: its event's step, or the last step for a
/// judgement made at the end of the run.
fn first_failure(report: &RunReport, steps: &[Step]) -> Option<Failure> {
    let violation = report.violations.first()?;
    let step = match violation.event_index {
        Some(index) => steps
            .iter()
            .position(|s| s.event >= index)
            .map_or(steps.len(), |p| p + 1),
        None => steps.len(),
    };
    Some(Failure {
        step,
        oracle: super::oracle_name(violation.oracle).to_string(),
        detail: violation.detail.clone(),
    })
}

/// JSON safe inside a `<script>` element: no `</` can end it early.
fn script_json(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "null".into())
        .replace("</", "<\\/")
}

/// The stepper's section of the page.
pub fn stepper_section(html: &mut String, steps: &Steps) {
    let last = steps.steps.len();
    let _ = write!(
        html,
        "<section id=\"stepper\"><h2>Step through the counterexample</h2><p class=\"muted\">Steps of {}{}. Step 0 is before \
         the first event; step k shows the replicas after event k. Use the slider, the buttons or the arrow keys; \
         <code>#step=k</code> in the address opens step k.</p>\
         <div class=\"controls\"><button type=\"button\" id=\"stepper-first\">&#9664;&#9664; start</button>\
         <button type=\"button\" id=\"stepper-prev\">&#9664; back</button>\
         <input type=\"range\" id=\"stepper-range\" min=\"0\" max=\"{last}\" value=\"0\" aria-label=\"step\">\
         <button type=\"button\" id=\"stepper-next\">next &#9654;</button>\
         <button type=\"button\" id=\"stepper-fail\">to the failure</button> <b id=\"stepper-position\">step 0 of {last}</b></div>\
         <p id=\"stepper-event\">Before the first event.</p><p id=\"stepper-oracle\" class=\"oracle\"></p>\
         <div class=\"scroll\"><table id=\"stepper-replicas\"><tr><th>replica</th><th>status</th><th>delivered</th><th>state</th></tr>",
        escape(&steps.caption),
        if steps.cut {
            format!(" (its first {} events: more, or larger states, would make the page too large)", steps.steps.len())
        } else {
            String::new()
        }
    );
    for replica in &steps.initial {
        let _ = write!(
            html,
            "<tr id=\"stepper-replica-{id}\"><td>r{id}</td><td class=\"status\">{}</td><td class=\"num delivered\">{}</td>\
             <td><pre class=\"state\">{}</pre></td></tr>",
            replica.status,
            replica.delivered,
            escape(&replica.state),
            id = replica.replica
        );
    }
    let _ = writeln!(
        html,
        "</table></div><h3>Messages in flight: <span id=\"stepper-inflight-count\">0</span></h3><ul id=\"stepper-inflight\"></ul>\
         <noscript><p>The stepper needs JavaScript; the space-time diagram shows the same events.</p></noscript>\
         <script type=\"application/json\" id=\"stepper-data\">{}</script><script>{STEPPER_SCRIPT}</script></section>",
        script_json(steps)
    );
}

/// Shows step k: replays the recorded changes up to k (steps are small: at most
/// [`STEPPER_EVENTS_MAX`]), then writes the rows, the messages in flight and the oracle line.
const STEPPER_SCRIPT: &str = r#"
(function () {
  var data = JSON.parse(document.getElementById('stepper-data').textContent);
  var range = document.getElementById('stepper-range');
  var last = data.steps.length;
  function text(id, value) { document.getElementById(id).textContent = value; }
  function show(k) {
    k = Math.max(0, Math.min(last, k | 0));
    range.value = k;
    var replicas = {}, changed = {}, flight = {}, order = [];
    data.initial.forEach(function (r) { replicas[r.replica] = r; });
    for (var i = 0; i < k; i++) {
      var step = data.steps[i];
      step.replicas.forEach(function (r) { replicas[r.replica] = r; if (i === k - 1) changed[r.replica] = true; });
      if (step.message === null) continue;
      var key = step.message;
      if (step.kind === 'send' || step.kind === 'duplicate') {
        if (!flight[key]) { flight[key] = { copies: 0, step: step }; order.push(key); }
        flight[key].copies += 1;
      } else if ((step.kind === 'deliver' || step.kind === 'drop') && flight[key]) {
        flight[key].copies -= 1;
      }
    }
    Object.keys(replicas).forEach(function (id) {
      var row = document.getElementById('stepper-replica-' + id);
      if (!row) return;
      var r = replicas[id];
      row.querySelector('.status').textContent = r.status;
      row.querySelector('.delivered').textContent = r.delivered;
      row.querySelector('.state').textContent = r.state;
      row.className = changed[id] ? 'changed' : '';
    });
    var list = document.getElementById('stepper-inflight');
    list.textContent = '';
    var count = 0;
    order.forEach(function (key) {
      var m = flight[key];
      if (m.copies <= 0) return;
      count += m.copies;
      var item = document.createElement('li');
      item.textContent = 'message ' + key + ' from ' + m.step.from + ' to ' + m.step.to + ', sent at ' + m.step.at +
        (m.copies > 1 ? ' (' + m.copies + ' copies)' : '');
      list.appendChild(item);
    });
    text('stepper-inflight-count', count);
    text('stepper-position', 'step ' + k + ' of ' + last);
    text('stepper-event', k === 0 ? 'Before the first event.' :
      'Event #' + data.steps[k - 1].event + ' at ' + data.steps[k - 1].at + ': ' + data.steps[k - 1].what + '.');
    var oracle = document.getElementById('stepper-oracle'), f = data.failure;
    if (!f) { oracle.textContent = 'Every oracle holds throughout.'; oracle.className = 'oracle good'; }
    else if (k < f.step) { oracle.textContent = 'No oracle has failed yet; ' + f.oracle + ' fails at step ' + f.step + '.'; oracle.className = 'oracle'; }
    else { oracle.textContent = (k === f.step ? 'Here ' : 'Since step ' + f.step + ' ') + f.oracle + ' fails: ' + f.detail + '.'; oracle.className = 'oracle bad'; }
    if (history.replaceState) history.replaceState(null, '', '#step=' + k);
  }
  function fromHash() { var m = /step=(\d+)/.exec(location.hash); return m ? parseInt(m[1], 10) : 0; }
  range.addEventListener('input', function () { show(range.value); });
  document.getElementById('stepper-first').onclick = function () { show(0); };
  document.getElementById('stepper-prev').onclick = function () { show(+range.value - 1); };
  document.getElementById('stepper-next').onclick = function () { show(+range.value + 1); };
  document.getElementById('stepper-fail').onclick = function () { show(data.failure ? data.failure.step : last); };
  document.addEventListener('keydown', function (e) {
    if (e.key === 'ArrowRight') show(+range.value + 1);
    if (e.key === 'ArrowLeft') show(+range.value - 1);
  });
  window.addEventListener('hashchange', function () { show(fromHash()); });
  show(fromHash());
})();
"#;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn states_read_as_rows_or_pairs() {
        assert_eq!(
            state_text(&json!({"rows": 2, "cols": 2, "cells": [1, null, null, "b"]})),
            "1 ·\n· b"
        );
        assert_eq!(
            state_text(&json!({"rows": 1, "cols": 2, "cells": [75, null]})),
            "75  ·",
            "columns line up"
        );
        assert_eq!(state_text(&json!({"1": 7, "2": 8})), "1 = 7, 2 = 8");
        assert_eq!(state_text(&json!({})), "(empty)");
        let big: Vec<Value> = (0..100)
            .map(|i| if i == 12 { json!(5) } else { Value::Null })
            .collect();
        assert_eq!(
            state_text(&json!({"rows": 10, "cols": 10, "cells": big})),
            "(1, 2) = 5"
        );
    }

    #[test]
    fn script_json_cannot_close_the_script_element() {
        assert_eq!(script_json(&"</script>"), "\"<\\/script>\"");
    }

    /// A 256 x 256 grid: every step that touches a replica reads 65,536 cells, so the stepper
    /// stops at its budget of cells, long before its budget of events, and says so.
    #[test]
    fn large_states_cut_the_stepper_short() {
        let scenario = Scenario {
            replicas: 4,
            crdt: converge_netsim::CrdtSpec::LwwGrid(converge_crdt::LwwGridConfig {
                rows: 256,
                cols: 256,
                ..Default::default()
            }),
            ..Scenario::default()
        };
        let report = converge_checker::judge_builtin(&scenario, 0).unwrap();
        let steps = steps_of(&report, &scenario, 0, "the run".into()).unwrap();
        assert!(steps.cut);
        assert!(
            steps.steps.len() < STEPPER_EVENTS_MAX,
            "{}",
            steps.steps.len()
        );
        let read: usize = steps.steps.iter().map(|s| s.replicas.len()).sum::<usize>() * 65_536;
        assert!(read <= STEPPER_STATE_VALUES_MAX, "{read}");
        let mut html = String::new();
        stepper_section(&mut html, &steps);
        assert!(html.contains(&format!("(its first {} events:", steps.steps.len())));
    }
}
