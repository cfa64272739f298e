//! States side by side: replicas grouped by equal state, the cells or keys that differ between
//! the groups highlighted. Rendering is linear in what it shows: each view is serialized once to
//! find its group, and each cell or key is compared across the groups once. What it shows is
//! capped (groups, drawn cells, listed differences), and the page says when it stops short.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use converge_checker::oracles::ReplicaSnapshot;
use serde_json::Value;

use super::escape;

/// Groups of equal states drawn side by side; the others are counted.
pub const STATE_GROUPS_SHOWN_MAX: usize = 6;
/// Cells of a grid drawn as a grid; a larger grid lists its differing cells instead.
pub const GRID_CELLS_DRAWN_MAX: usize = 256;
/// Keys of a dictionary listed in full; a larger one lists its differing keys instead.
pub const KEYS_LISTED_MAX: usize = 64;
/// Differing cells or keys listed at most.
pub const DIFFERENCES_LISTED_MAX: usize = 200;
/// Replica ids named in one group's heading.
const REPLICAS_NAMED_MAX: usize = 12;

/// Replicas holding one state.
pub struct Group<'a> {
    pub view: &'a Value,
    pub replicas: Vec<u32>,
    pub delivered: BTreeSet<u32>,
}

/// Groups snapshots by equal view, in order of the first replica of each group.
pub fn group_by_view(snapshots: &[ReplicaSnapshot]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut by_text: BTreeMap<String, usize> = BTreeMap::new();
    for snapshot in snapshots {
        let text = serde_json::to_string(&snapshot.view).unwrap_or_default();
        let index = *by_text.entry(text).or_insert_with(|| {
            groups.push(Group {
                view: &snapshot.view,
                replicas: Vec::new(),
                delivered: BTreeSet::new(),
            });
            groups.len() - 1
        });
        groups[index].replicas.push(snapshot.replica);
        groups[index].delivered.insert(snapshot.delivered);
    }
    groups
}

/// "replica 3", "replicas 0, 2 and 5", "replicas 0, 1, ... and 88 more" with delivered counts.
pub fn group_label(group: &Group<'_>) -> String {
    if group.replicas == [u32::MAX] {
        return "sequential specification (every update in stamp order)".to_string();
    }
    let named: Vec<String> = group
        .replicas
        .iter()
        .take(REPLICAS_NAMED_MAX)
        .map(u32::to_string)
        .collect();
    let more = group.replicas.len().saturating_sub(REPLICAS_NAMED_MAX);
    let ids = match (named.len(), more) {
        (1, _) => format!("replica {}", named[0]),
        (_, 0) => {
            let (last, rest) = named.split_last().expect("two or more");
            format!("replicas {} and {last}", rest.join(", "))
        }
        _ => format!("replicas {} and {more} more", named.join(", ")),
    };
    let delivered = match (group.delivered.first(), group.delivered.last()) {
        (Some(low), Some(high)) if low == high => format!("{low} updates delivered"),
        (Some(low), Some(high)) => format!("{low} to {high} updates delivered"),
        _ => String::new(),
    };
    format!("{ids} ({delivered})")
}

/// The grid a view holds, if it is one: rows, columns and cells.
fn grid(view: &Value) -> Option<(u64, u64, &Vec<Value>)> {
    Some((
        view.get("rows")?.as_u64()?,
        view.get("cols")?.as_u64()?,
        view.get("cells")?.as_array()?,
    ))
}

fn cell_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "·".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Renders `groups` side by side (the first [`STATE_GROUPS_SHOWN_MAX`]), highlighting what
/// differs between them.
pub fn render_groups(html: &mut String, groups: &[Group<'_>]) {
    let shown = &groups[..groups.len().min(STATE_GROUPS_SHOWN_MAX)];
    if groups.len() > shown.len() {
        let _ = write!(
            html,
            "<p class=\"muted cap\">{} distinct states; the first {} are shown.</p>",
            groups.len(),
            shown.len()
        );
    }
    let grids: Option<Vec<(u64, u64, &Vec<Value>)>> = shown.iter().map(|g| grid(g.view)).collect();
    let same_shape = grids
        .as_ref()
        .is_some_and(|g| g.windows(2).all(|w| (w[0].0, w[0].1) == (w[1].0, w[1].1)));
    match grids {
        Some(grids) if same_shape && !grids.is_empty() => render_grids(html, shown, &grids),
        _ if shown.iter().all(|g| g.view.is_object()) => render_maps(html, shown),
        _ => render_other(html, shown),
    }
}

fn render_grids(html: &mut String, groups: &[Group<'_>], grids: &[(u64, u64, &Vec<Value>)]) {
    let (rows, cols, first) = grids[0];
    let cells = first.len();
    let differs: Vec<bool> = (0..cells)
        .map(|i| {
            grids
                .iter()
                .any(|(_, _, theirs)| theirs.get(i) != first.get(i))
        })
        .collect();
    if cells <= GRID_CELLS_DRAWN_MAX {
        html.push_str("<div class=\"states\">");
        for (group, (_, _, mine)) in groups.iter().zip(grids) {
            let _ = write!(
                html,
                "<div class=\"state\"><h3>{}</h3><table class=\"grid\">",
                escape(&group_label(group))
            );
            for r in 0..rows {
                html.push_str("<tr>");
                for c in 0..cols {
                    let index = (r * cols + c) as usize;
                    let class = if differs.get(index) == Some(&true) {
                        " class=\"diff\""
                    } else {
                        ""
                    };
                    let _ = write!(
                        html,
                        "<td{class}>{}</td>",
                        escape(&cell_text(mine.get(index)))
                    );
                }
                html.push_str("</tr>");
            }
            html.push_str("</table></div>");
        }
        html.push_str("</div>");
        return;
    }
    let differing: Vec<usize> = (0..cells).filter(|&i| differs[i]).collect();
    let _ = write!(
        html,
        "<p class=\"muted cap\">The grid has {rows} x {cols} cells, too many to draw: {} of them differ{}.</p>",
        differing.len(),
        listed_note(differing.len())
    );
    difference_table(
        html,
        groups,
        differing.iter().map(|&i| {
            let label = format!("({}, {})", i as u64 / cols.max(1), i as u64 % cols.max(1));
            let values: Vec<String> = grids.iter().map(|(_, _, g)| cell_text(g.get(i))).collect();
            (label, values, true)
        }),
    );
}

fn listed_note(count: usize) -> String {
    if count > DIFFERENCES_LISTED_MAX {
        format!("; the first {DIFFERENCES_LISTED_MAX} are listed")
    } else {
        String::new()
    }
}

/// One table: a row per cell or key, a column per group; rows that differ highlighted.
fn difference_table(
    html: &mut String,
    groups: &[Group<'_>],
    rows: impl Iterator<Item = (String, Vec<String>, bool)>,
) {
    html.push_str("<div class=\"scroll\"><table class=\"dict\"><tr><th>key</th>");
    for group in groups {
        let _ = write!(html, "<th>{}</th>", escape(&group_label(group)));
    }
    html.push_str("</tr>");
    for (label, values, differs) in rows.take(DIFFERENCES_LISTED_MAX) {
        let _ = write!(
            html,
            "<tr{}><td>{}</td>",
            if differs { " class=\"diff\"" } else { "" },
            escape(&label)
        );
        for value in values {
            let _ = write!(html, "<td>{}</td>", escape(&value));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table></div>");
}

fn render_maps(html: &mut String, groups: &[Group<'_>]) {
    let maps: Vec<&serde_json::Map<String, Value>> =
        groups.iter().filter_map(|g| g.view.as_object()).collect();
    let mut keys: Vec<&String> = maps
        .iter()
        .flat_map(|m| m.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    keys.sort_by_key(|k| (k.parse::<u64>().unwrap_or(u64::MAX), (*k).clone()));
    let value_of = |map: &serde_json::Map<String, Value>, key: &str| {
        map.get(key)
            .map_or("(absent)".to_string(), |v| cell_text(Some(v)))
    };
    let rows: Vec<(String, Vec<String>, bool)> = keys
        .iter()
        .map(|key| {
            let first = maps[0].get(key.as_str());
            let differs = maps.iter().any(|m| m.get(key.as_str()) != first);
            let values = maps.iter().map(|m| value_of(m, key)).collect();
            ((*key).clone(), values, differs)
        })
        .collect();
    if keys.len() <= KEYS_LISTED_MAX {
        difference_table(html, groups, rows.into_iter());
        return;
    }
    let differing: Vec<_> = rows.into_iter().filter(|r| r.2).collect();
    let _ = write!(
        html,
        "<p class=\"muted cap\">{} keys, too many to list: {} of them differ{}.</p>",
        keys.len(),
        differing.len(),
        listed_note(differing.len())
    );
    difference_table(html, groups, differing.into_iter());
}

fn render_other(html: &mut String, groups: &[Group<'_>]) {
    html.push_str("<div class=\"states\">");
    let first = groups.first().map(|g| g.view);
    for group in groups {
        let class = if Some(group.view) != first || groups.len() > 1 {
            " class=\"diff\""
        } else {
            ""
        };
        let _ = write!(
            html,
            "<div class=\"state\"><h3>{}</h3><pre{class}>{}</pre></div>",
            escape(&group_label(group)),
            escape(&serde_json::to_string_pretty(group.view).unwrap_or_default())
        );
    }
    html.push_str("</div>");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn snapshot(replica: u32, view: Value) -> ReplicaSnapshot {
        ReplicaSnapshot {
            replica,
            delivered: 4,
            view,
            lacking: 0,
            lacks: Vec::new(),
        }
    }

    #[test]
    fn equal_states_form_one_group_and_labels_name_the_replicas() {
        let snapshots = vec![
            snapshot(0, json!({"a": 1})),
            snapshot(1, json!({"a": 2})),
            snapshot(2, json!({"a": 1})),
        ];
        let groups = group_by_view(&snapshots);
        assert_eq!(groups.len(), 2);
        assert_eq!(
            group_label(&groups[0]),
            "replicas 0 and 2 (4 updates delivered)"
        );
        assert_eq!(group_label(&groups[1]), "replica 1 (4 updates delivered)");
    }

    /// A 256 x 256 grid held by 100 replicas in 100 states: drawing it used to take minutes (every
    /// cell compared by copying every other state's cells); now it lists the differences, capped.
    #[test]
    fn a_huge_grid_in_many_states_renders_quickly_and_says_what_it_leaves_out() {
        let cells = 256 * 256;
        let snapshots: Vec<ReplicaSnapshot> = (0..100)
            .map(|r| {
                let mut values = vec![Value::from(0); cells];
                values[r as usize] = Value::from(r + 1);
                snapshot(r, json!({"rows": 256, "cols": 256, "cells": values}))
            })
            .collect();
        let started = std::time::Instant::now();
        let groups = group_by_view(&snapshots);
        let mut html = String::new();
        render_groups(&mut html, &groups);
        assert!(
            started.elapsed().as_secs_f64() < 10.0,
            "{:?}",
            started.elapsed()
        );
        assert_eq!(groups.len(), 100);
        assert!(
            html.contains("100 distinct states; the first 6 are shown."),
            "{html}"
        );
        assert!(html.contains("The grid has 256 x 256 cells, too many to draw: 6 of them differ."));
        assert_eq!(html.matches("<tr class=\"diff\">").count(), 6);
        assert!(html.len() < 20_000, "{}", html.len());
    }

    #[test]
    fn a_small_grid_is_drawn_with_its_differing_cells_marked() {
        let a = snapshot(0, json!({"rows": 1, "cols": 2, "cells": [1, 2]}));
        let b = snapshot(1, json!({"rows": 1, "cols": 2, "cells": [1, 3]}));
        let list = [a, b];
        let groups = group_by_view(&list);
        let mut html = String::new();
        render_groups(&mut html, &groups);
        assert_eq!(html.matches("<td class=\"diff\">").count(), 2, "{html}");
        assert_eq!(html.matches("<td>1</td>").count(), 2);
    }
}
