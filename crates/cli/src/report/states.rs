//! States side by side: replicas grouped by equal state, the cells, keys or list elements that
//! differ between the groups highlighted. Rendering is linear in what it shows: each view is
//! serialized once to find its group, and each cell or key is compared across the groups once.
//! Lists are aligned, as sequence alignments are printed: one row per group, one column per place,
//! a gap where a group lacks an element the reference group holds ([`render_lists`]); aligning two
//! lists compares their differing middles element by element, at most [`LIST_ALIGN_CELLS_MAX`]
//! comparisons. What it shows is capped (groups, drawn cells, listed differences, aligned
//! columns), and the page says when it stops short.

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
/// Columns of an alignment of lists drawn in one block (one table, a row per group).
pub const LIST_BLOCK_COLUMNS: usize = 25;
/// Columns of an alignment of lists drawn at most; a longer alignment draws only its blocks
/// that hold a difference, up to this many columns.
pub const LIST_COLUMNS_DRAWN_MAX: usize = 500;
/// Element comparisons an alignment of two lists' differing middles may cost; a longer middle
/// is compared place by place.
pub const LIST_ALIGN_CELLS_MAX: usize = 4_000_000;
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
        return "sequential specification (the same updates)".to_string();
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
    let lists: Option<Vec<&Vec<Value>>> = shown.iter().map(|g| list(g.view)).collect();
    match (grids, lists) {
        (Some(grids), _) if same_shape && !grids.is_empty() => render_grids(html, shown, &grids),
        _ if shown.iter().all(|g| g.view.is_object()) => render_maps(html, shown),
        (_, Some(lists)) if !lists.is_empty() => render_lists(html, shown, &lists),
        _ => render_other(html, shown),
    }
}

/// The elements a view holds, if it is a list of plain values.
fn list(view: &Value) -> Option<&Vec<Value>> {
    view.as_array()
        .filter(|items| items.iter().all(|v| !v.is_array() && !v.is_object()))
}

/// One place of a list against the reference list.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Place<'a> {
    /// Both hold it.
    Same(&'a Value),
    /// Only this list holds it.
    Extra(&'a Value),
    /// Only the reference holds it.
    Missing(&'a Value),
}

/// `mine` against `reference`, place by place, as few places as an alignment finds: the common
/// prefix and suffix, and the longest common subsequence of what lies between (or, when that
/// would cost more than [`LIST_ALIGN_CELLS_MAX`] comparisons, the two middles place by place).
fn align<'a>(reference: &'a [Value], mine: &'a [Value]) -> Vec<Place<'a>> {
    let prefix = reference
        .iter()
        .zip(mine)
        .take_while(|(a, b)| a == b)
        .count();
    let suffix = reference[prefix..]
        .iter()
        .rev()
        .zip(mine[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (a, b) = (
        &reference[prefix..reference.len() - suffix],
        &mine[prefix..mine.len() - suffix],
    );
    let mut places: Vec<Place<'a>> = reference[..prefix].iter().map(Place::Same).collect();
    if a.len().saturating_mul(b.len()) <= LIST_ALIGN_CELLS_MAX {
        // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
        let width = b.len() + 1;
        let mut lcs = vec![0u32; (a.len() + 1) * width];
        for i in (0..a.len()).rev() {
            for j in (0..b.len()).rev() {
                lcs[i * width + j] = if a[i] == b[j] {
                    lcs[(i + 1) * width + j + 1] + 1
                } else {
                    lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            if i < a.len() && j < b.len() && a[i] == b[j] {
                places.push(Place::Same(&a[i]));
                i += 1;
                j += 1;
            } else if j < b.len()
                && (i == a.len() || lcs[i * width + j + 1] >= lcs[(i + 1) * width + j])
            {
                places.push(Place::Extra(&b[j]));
                j += 1;
            } else {
                places.push(Place::Missing(&a[i]));
                i += 1;
            }
        }
    } else {
        for k in 0..a.len().max(b.len()) {
            match (a.get(k), b.get(k)) {
                (Some(x), Some(y)) if x == y => places.push(Place::Same(x)),
                (x, y) => {
                    places.extend(x.map(Place::Missing));
                    places.extend(y.map(Place::Extra));
                }
            }
        }
    }
    places.extend(
        reference[reference.len() - suffix..]
            .iter()
            .map(Place::Same),
    );
    places
}

/// One cell of an aligned list: a value, a gap (the reference's value, which this list lacks),
/// or padding where another list holds an extra element.
#[derive(Clone, Copy)]
enum AlignedCell<'a> {
    Value(&'a Value, bool),
    Gap(&'a Value),
    Pad,
}

/// Lists aligned against the list of the group that delivered the most updates, drawn first:
/// one row per group, a column per place, in blocks of [`LIST_BLOCK_COLUMNS`]; a gap (the value
/// struck out) where a group lacks an element the reference holds, highlighted values that the
/// reference lacks, and each row's count of elements at the end of each block.
fn render_lists(html: &mut String, groups: &[Group<'_>], lists: &[&Vec<Value>]) {
    let reference = (0..groups.len())
        .max_by_key(|&g| (groups[g].delivered.last().copied(), std::cmp::Reverse(g)))
        .unwrap_or(0);
    let order: Vec<usize> = std::iter::once(reference)
        .chain((0..groups.len()).filter(|&g| g != reference))
        .collect();
    let groups: Vec<&Group<'_>> = order.iter().map(|&g| &groups[g]).collect();
    let lists: Vec<&Vec<Value>> = order.iter().map(|&g| lists[g]).collect();
    let base = lists[0];
    // Per group: the extra elements before each reference place (and after the last), and
    // whether it holds each reference element.
    let mut extras: Vec<Vec<Vec<&Value>>> = Vec::with_capacity(lists.len());
    let mut holds: Vec<Vec<bool>> = Vec::with_capacity(lists.len());
    for mine in &lists {
        let mut before = vec![Vec::new(); base.len() + 1];
        let mut held = Vec::with_capacity(base.len());
        for place in align(base, mine) {
            match place {
                Place::Same(_) => held.push(true),
                Place::Missing(_) => held.push(false),
                Place::Extra(value) => before[held.len()].push(value),
            }
        }
        extras.push(before);
        holds.push(held);
    }
    // Columns: each place's extras (as wide as the most any group holds there), then the place.
    let mut columns: Vec<(Vec<AlignedCell<'_>>, bool)> = Vec::new();
    for place in 0..=base.len() {
        let width = extras.iter().map(|e| e[place].len()).max().unwrap_or(0);
        for k in 0..width {
            let cells = extras
                .iter()
                .map(|e| {
                    e[place]
                        .get(k)
                        .map_or(AlignedCell::Pad, |v| AlignedCell::Value(v, true))
                })
                .collect();
            columns.push((cells, true));
        }
        if let Some(value) = base.get(place) {
            let cells: Vec<AlignedCell<'_>> = holds
                .iter()
                .map(|h| {
                    if h[place] {
                        AlignedCell::Value(value, false)
                    } else {
                        AlignedCell::Gap(value)
                    }
                })
                .collect();
            let differs = holds.iter().any(|h| !h[place]);
            columns.push((cells, differs));
        }
    }
    let differing = columns.iter().filter(|(_, d)| *d).count();
    let _ = write!(
        html,
        "<p class=\"muted\">Each row is the list a group of replicas holds. The first row, {}, \
         delivered the most updates; the others are aligned with it: a struck-out value is an \
         element the first row holds and that row lacks, a highlighted value one that row holds \
         and the first row lacks, a dash where a row holds nothing another row holds. ▾ marks the \
         places that differ ({differing} of {}); the number after a row counts its elements up to \
         there.</p>",
        escape(&group_label(groups[0])),
        columns.len()
    );
    let blocks: Vec<usize> = (0..columns.len().div_ceil(LIST_BLOCK_COLUMNS)).collect();
    let drawn: Vec<usize> = if columns.len() <= LIST_COLUMNS_DRAWN_MAX {
        blocks
    } else {
        let with_difference: Vec<usize> = blocks
            .into_iter()
            .filter(|b| {
                columns[b * LIST_BLOCK_COLUMNS..((b + 1) * LIST_BLOCK_COLUMNS).min(columns.len())]
                    .iter()
                    .any(|(_, d)| *d)
            })
            .collect();
        let kept = LIST_COLUMNS_DRAWN_MAX / LIST_BLOCK_COLUMNS;
        let _ = write!(
            html,
            "<p class=\"muted cap\">The alignment has {} places, too many to draw: only the \
             {} blocks of {LIST_BLOCK_COLUMNS} places that hold a difference are drawn{}.</p>",
            columns.len(),
            with_difference.len(),
            if with_difference.len() > kept {
                format!(", the first {kept} of them")
            } else {
                String::new()
            }
        );
        with_difference.into_iter().take(kept).collect()
    };
    // Each group's count of elements up to the end of each block.
    let mut counts = vec![vec![0usize; groups.len()]; columns.len().div_ceil(LIST_BLOCK_COLUMNS)];
    let mut running = vec![0usize; groups.len()];
    for (index, (cells, _)) in columns.iter().enumerate() {
        for (g, cell) in cells.iter().enumerate() {
            running[g] += usize::from(matches!(cell, AlignedCell::Value(..)));
        }
        counts[index / LIST_BLOCK_COLUMNS].clone_from(&running);
    }
    html.push_str("<div class=\"scroll\">");
    for block in drawn {
        let range =
            block * LIST_BLOCK_COLUMNS..((block + 1) * LIST_BLOCK_COLUMNS).min(columns.len());
        let _ = write!(
            html,
            "<table class=\"align\"><tr><th class=\"muted\">places {} to {}</th>",
            range.start + 1,
            range.end
        );
        for (_, differs) in &columns[range.clone()] {
            html.push_str(if *differs {
                "<td class=\"mark\">▾</td>"
            } else {
                "<td></td>"
            });
        }
        html.push_str("<td></td></tr>");
        for (g, group) in groups.iter().enumerate() {
            let _ = write!(html, "<tr><th>{}</th>", escape(&group_label(group)));
            for (cells, _) in &columns[range.clone()] {
                match cells[g] {
                    AlignedCell::Value(value, extra) => {
                        let class = if extra { " class=\"diff\"" } else { "" };
                        let _ = write!(html, "<td{class}>{}</td>", escape(&cell_text(Some(value))));
                    }
                    AlignedCell::Gap(value) => {
                        let _ = write!(
                            html,
                            "<td class=\"gap\"><s>{}</s></td>",
                            escape(&cell_text(Some(value)))
                        );
                    }
                    AlignedCell::Pad => html.push_str("<td class=\"pad\">-</td>"),
                }
            }
            let _ = write!(html, "<td class=\"count\">{}</td></tr>", counts[block][g]);
        }
        html.push_str("</table>");
    }
    html.push_str("</div>");
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

    /// Groups and renders `snapshots`, which a page must do within 10 s however large they
    /// are (a bound against quadratic blow-ups, not a performance claim).
    fn render_within_bound(snapshots: &[ReplicaSnapshot]) -> (Vec<Group<'_>>, String) {
        let started = std::time::Instant::now();
        let groups = group_by_view(snapshots);
        let mut html = String::new();
        render_groups(&mut html, &groups);
        assert!(
            started.elapsed().as_secs_f64() < 10.0,
            "{:?}",
            started.elapsed()
        );
        (groups, html)
    }

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
        let (groups, html) = render_within_bound(&snapshots);
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
    fn lists_align_on_what_they_share() {
        let values = |v: &[u64]| v.iter().map(|x| Value::from(*x)).collect::<Vec<_>>();
        let (reference, mine) = (values(&[1, 2, 3, 4, 5]), values(&[1, 3, 9, 4, 5]));
        let places = align(&reference, &mine);
        let (one, two, three, four, five, nine) = (
            &reference[0],
            &reference[1],
            &reference[2],
            &reference[3],
            &reference[4],
            &mine[2],
        );
        assert_eq!(
            places,
            vec![
                Place::Same(one),
                Place::Missing(two),
                Place::Same(three),
                Place::Extra(nine),
                Place::Same(four),
                Place::Same(five),
            ]
        );
        assert_eq!(align(&reference, &[]).len(), 5);
        assert_eq!(align(&[], &mine).len(), 5);
    }

    #[test]
    fn a_list_is_drawn_aligned_with_gaps_and_extras_marked() {
        let mut a = snapshot(0, json!([3, 2, 4, 1, 3, 2, 2, 1, 1, 4]));
        a.delivered = 16;
        let b = snapshot(1, json!([3, 2, 4, 1, 3, 1, 4, 7]));
        let list = [a, b];
        let groups = group_by_view(&list);
        let mut html = String::new();
        render_groups(&mut html, &groups);
        assert!(
            html.contains("The first row, replica 0 (16 updates"),
            "{html}"
        );
        // Replica 1 lacks 2, 2 and 1 (drawn as gaps) and holds a 7 that replica 0 lacks.
        assert_eq!(html.matches("<td class=\"gap\">").count(), 3, "{html}");
        assert_eq!(html.matches("<td class=\"diff\">").count(), 1, "{html}");
        assert!(html.contains("<td class=\"diff\">7</td>"), "{html}");
        assert!(html.contains("(4 of 11)"), "{html}");
        assert_eq!(html.matches("<table class=\"align\">").count(), 1);
    }

    /// Lists of 20,000 elements in 50 states: the alignment of each against the reference stays
    /// within its comparison budget, and only the blocks with a difference are drawn, capped.
    #[test]
    fn long_lists_in_many_states_render_quickly_and_say_what_they_leave_out() {
        let snapshots: Vec<ReplicaSnapshot> = (0..50u32)
            .map(|r| {
                let mut values: Vec<u64> = (0..20_000).collect();
                values.remove(397 * r as usize);
                let mut s = snapshot(r, json!(values));
                s.delivered = r;
                s
            })
            .collect();
        let (_, html) = render_within_bound(&snapshots);
        assert!(
            html.contains("50 distinct states; the first 6 are shown."),
            "{html}"
        );
        assert!(html.contains("too many to draw"), "{html}");
        assert!(html.len() < 200_000, "{}", html.len());
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
