//! The evidence a failure shows in a terminal: the states a violation names, each replica with
//! how many updates it delivered and which it lacks, and their views, whole when they are short
//! and otherwise as the places where they differ. Text only, capped, so that a failure of a run
//! with a thousand replicas or a large state still prints a screenful.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use converge_checker::oracles::ReplicaSnapshot;
use converge_checker::Violation;
use serde_json::Value;

/// Replicas whose states a failure lists; the others are counted.
pub const STATES_SHOWN_MAX: usize = 6;
/// A view longer than this (as compact JSON) is shown as the places where the views differ.
pub const VIEW_SHOWN_CHARS_MAX: usize = 80;
/// Places where the views differ listed at most; the others are counted.
pub const DIFFERENCES_SHOWN_MAX: usize = 8;

/// The lines that show `violation`'s evidence, each indented by two spaces, or nothing when it
/// carries no states (a panic).
pub fn lines(violation: &Violation) -> String {
    let states = &violation.states;
    if states.is_empty() {
        return String::new();
    }
    let shown = &states[..states.len().min(STATES_SHOWN_MAX)];
    let views: Vec<String> = shown
        .iter()
        .map(|s| serde_json::to_string(&s.view).unwrap_or_default())
        .collect();
    let inline = views
        .iter()
        .all(|v| v.chars().count() <= VIEW_SHOWN_CHARS_MAX);
    let mut text = String::new();
    for (state, view) in shown.iter().zip(&views) {
        let _ = write!(text, "  {}", describe(state));
        if inline {
            let _ = write!(text, ": {view}");
        }
        text.push('\n');
    }
    if states.len() > shown.len() {
        let _ = writeln!(
            text,
            "  ({} more replicas, not shown)",
            states.len() - shown.len()
        );
    }
    if !inline {
        text.push_str(&differences(shown));
    }
    text
}

/// "replica 3, 38 updates delivered, lacks 5 (r1#2, r3#1, r3#4, r3#12, r2#5)".
fn describe(state: &ReplicaSnapshot) -> String {
    if state.replica == u32::MAX {
        return format!(
            "the sequential specification over the same {} updates",
            state.delivered
        );
    }
    let plural = if state.delivered == 1 { "" } else { "s" };
    let mut text = format!(
        "replica {}, {} update{plural} delivered",
        state.replica, state.delivered
    );
    if state.lacking > 0 {
        let _ = write!(
            text,
            ", lacks {} ({}",
            state.lacking,
            state.lacks.join(", ")
        );
        let unnamed = state.lacking as usize - state.lacks.len().min(state.lacking as usize);
        if unnamed > 0 {
            let _ = write!(text, " and {unnamed} more");
        }
        text.push(')');
    }
    text
}

fn label(state: &ReplicaSnapshot) -> String {
    if state.replica == u32::MAX {
        "specification".to_string()
    } else {
        format!("replica {}", state.replica)
    }
}

/// Where the views of `states` differ, one line per place: `cells[5]: replica 0 75, replica 1 88`.
fn differences(states: &[ReplicaSnapshot]) -> String {
    let views: Vec<Option<&Value>> = states.iter().map(|s| Some(&s.view)).collect();
    let mut places = Vec::new();
    let mut total = 0;
    walk(&views, &mut String::new(), &mut places, &mut total);
    let mut text = String::new();
    if total == 0 {
        return text;
    }
    let _ = writeln!(
        text,
        "  the views differ at {total} place{}:",
        if total == 1 { "" } else { "s" }
    );
    for (path, values) in &places {
        let values: Vec<String> = states
            .iter()
            .zip(values)
            .map(|(state, value)| format!("{} {value}", label(state)))
            .collect();
        let place = if path.is_empty() { "the view" } else { path };
        let _ = writeln!(text, "    {place}: {}", values.join(", "));
    }
    if total > places.len() {
        let _ = writeln!(text, "    and {} more places", total - places.len());
    }
    text
}

/// Walks the views together and lists (the first few of) the places where they differ: into
/// objects by key and into arrays of one length by index, down to the values that differ.
fn walk(
    values: &[Option<&Value>],
    path: &mut String,
    places: &mut Vec<(String, Vec<String>)>,
    total: &mut usize,
) {
    let first = values[0];
    if values.iter().all(|v| *v == first) {
        return;
    }
    let objects: Option<Vec<&serde_json::Map<String, Value>>> = values
        .iter()
        .map(|v| v.and_then(Value::as_object))
        .collect();
    if let Some(objects) = objects {
        let keys: BTreeSet<&String> = objects.iter().flat_map(|o| o.keys()).collect();
        for key in keys {
            let children: Vec<Option<&Value>> = objects.iter().map(|o| o.get(key)).collect();
            let length = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            walk(&children, path, places, total);
            path.truncate(length);
        }
        return;
    }
    let arrays: Option<Vec<&Vec<Value>>> =
        values.iter().map(|v| v.and_then(Value::as_array)).collect();
    if let Some(arrays) = arrays.filter(|a| a.windows(2).all(|w| w[0].len() == w[1].len())) {
        for index in 0..arrays[0].len() {
            let children: Vec<Option<&Value>> = arrays.iter().map(|a| a.get(index)).collect();
            let length = path.len();
            let _ = write!(path, "[{index}]");
            walk(&children, path, places, total);
            path.truncate(length);
        }
        return;
    }
    *total += 1;
    if places.len() < DIFFERENCES_SHOWN_MAX {
        let shown = values
            .iter()
            .map(|v| match v {
                None => "(absent)".to_string(),
                Some(value) => serde_json::to_string(value).unwrap_or_default(),
            })
            .collect();
        places.push((path.clone(), shown));
    }
}

#[cfg(test)]
mod tests {
    use converge_checker::Oracle;
    use serde_json::json;

    use super::*;

    fn state(replica: u32, view: Value) -> ReplicaSnapshot {
        ReplicaSnapshot {
            replica,
            delivered: 2,
            view,
            lacking: 0,
            lacks: Vec::new(),
        }
    }

    fn violation(states: Vec<ReplicaSnapshot>) -> Violation {
        Violation {
            oracle: Oracle::StrongConvergence,
            event_index: Some(3),
            at_us: 1_000,
            replicas: states.iter().map(|s| s.replica).collect(),
            detail: String::new(),
            states,
        }
    }

    #[test]
    fn short_views_are_shown_whole() {
        let text = lines(&violation(vec![state(0, json!(163)), state(1, json!(150))]));
        assert_eq!(
            text,
            "  replica 0, 2 updates delivered: 163\n  replica 1, 2 updates delivered: 150\n"
        );
    }

    #[test]
    fn long_views_show_where_they_differ_and_lacks_are_named() {
        let mut cells_a = vec![Value::Null; 40];
        let mut cells_b = cells_a.clone();
        cells_a[5] = json!(75);
        cells_b[5] = json!(88);
        cells_b[7] = json!(1);
        let mut lacking = state(1, json!({"rows": 5, "cols": 8, "cells": cells_b}));
        lacking.lacking = 20;
        lacking.lacks = (1..=16).map(|seq| format!("r0#{seq}")).collect();
        let text = lines(&violation(vec![
            state(0, json!({"rows": 5, "cols": 8, "cells": cells_a})),
            lacking,
        ]));
        assert!(text.contains("lacks 20 (r0#1, r0#2,"), "{text}");
        assert!(text.contains("r0#16 and 4 more)\n"), "{text}");
        assert!(text.contains("the views differ at 2 places:"), "{text}");
        assert!(
            text.contains("    cells[5]: replica 0 75, replica 1 88\n"),
            "{text}"
        );
        assert!(
            text.contains("    cells[7]: replica 0 null, replica 1 1\n"),
            "{text}"
        );
    }

    #[test]
    fn keys_one_view_lacks_are_absent_and_places_are_capped() {
        let a: serde_json::Map<String, Value> =
            (0..20).map(|k| (format!("key-{k:02}"), json!(k))).collect();
        let text = lines(&violation(vec![
            state(0, Value::Object(a)),
            state(
                1,
                json!({"other": "a long enough value to leave the views out of the lines"}),
            ),
        ]));
        assert!(text.contains("the views differ at 21 places:"), "{text}");
        assert!(
            text.contains("    key-00: replica 0 0, replica 1 (absent)\n"),
            "{text}"
        );
        assert!(text.contains("    and 13 more places\n"), "{text}");
    }
}
