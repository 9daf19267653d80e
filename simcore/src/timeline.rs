//! A text picture of a run: one lane per server showing its role over simulated time, and
//! a row marking the faults — the quickest way to *see* a split brain or a slow failover.
//!
//! ```text
//!           0s        10s       20s       30s
//! n1  ??????------------------------------------
//! n5  ??????LLLLLLLLLLLLXXXXXXXXXXXXXXX---------
//! faults              a              b
//! ```

use crate::check::roles::Replay;
use crate::check::view::Liveness;
use crate::history::{fmt_time, Entry, What};
use crate::scenario::Scenario;
use nodes::runtime::Role;

const COLUMNS: u64 = 100;

/// Renders the picture; `L` leader, `-` follower, `c` candidate, `?` no leader known,
/// `X` down, `P` paused, `.` up (a node without roles, e.g. KV).
pub fn render(scenario: &Scenario, history: &[Entry]) -> String {
    let end = (scenario.duration.0.as_nanos() as u64).max(1);
    let bucket = end.div_ceil(COLUMNS);
    let mut replay = Replay::new(history);
    let servers: Vec<String> = replay.servers().to_vec();
    let mut lanes: Vec<String> = vec![String::new(); servers.len()];
    for column in 0..COLUMNS {
        let until = (column + 1) * bucket;
        while replay.peek().is_some_and(|t| t < until) {
            replay.next_instant();
        }
        for (lane, server) in lanes.iter_mut().zip(&servers) {
            lane.push(glyph(&replay, server));
        }
    }
    let mut faults_row = vec![' '; COLUMNS as usize];
    let mut legend = Vec::new();
    for entry in history {
        if let What::Fault { fault } = &entry.what {
            let mark = (b'a' + (legend.len() % 26) as u8) as char;
            let column = ((entry.t / bucket) as usize).min(COLUMNS as usize - 1);
            faults_row[column] = mark;
            let target = [&fault.node, &fault.from, &fault.to]
                .into_iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
                .join("->");
            let groups = fault
                .groups
                .iter()
                .map(|g| g.join(","))
                .collect::<Vec<_>>()
                .join(" | ");
            let skipped = fault
                .skipped
                .as_ref()
                .map(|s| format!(" (skipped: {s})"))
                .unwrap_or_default();
            legend.push(format!(
                "  {mark} {} {} {target}{groups}{skipped}",
                fmt_time(entry.t),
                fault.action
            ));
        }
    }
    let mut out = format!(
        "{}: roles per server over simulated time ({} per column)\n",
        scenario.name,
        fmt_time(bucket)
    );
    let mut axis = String::from("      ");
    let mut column = 0;
    while column < COLUMNS {
        let label = format!("{}s", column * bucket / 1_000_000_000);
        axis.push_str(&format!("{label:<10}"));
        column += 10;
    }
    out.push_str(axis.trim_end());
    out.push('\n');
    for (server, lane) in servers.iter().zip(lanes) {
        out.push_str(&format!("{server:<6}{lane}\n"));
    }
    let faults_line = format!("faults{}", faults_row.iter().collect::<String>());
    out.push_str(faults_line.trim_end());
    out.push('\n');
    out.push_str("\nL leader  - follower  c candidate  ? no leader known  X down  P paused  . up (no role)\n");
    for line in legend {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// One character for a server's state: `L` leader, `-` following, `c` candidate,
/// `?` no leader known, `X` down, `P` paused, `.` up with no role (a KV node), blank
/// before it started.
pub fn glyph(replay: &Replay<'_>, server: &str) -> char {
    match (replay.liveness(server), replay.role(server)) {
        (Liveness::Down, _) => 'X',
        (Liveness::Paused, _) => 'P',
        (_, None) if replay.has_started(server) => '.',
        (_, None) => ' ',
        (_, Some((role, leader))) => match (role, leader) {
            (Role::Leader, _) => 'L',
            (Role::Candidate, _) => 'c',
            (Role::Follower, Some(_)) => '-',
            (Role::Follower, None) => '?',
        },
    }
}
