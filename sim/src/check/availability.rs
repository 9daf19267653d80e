//! `availability`: what fraction of the operations clients asked for was acknowledged?
//!
//! Every client operation invoked within `from`..`until` (of `clients`, when given)
//! counts once, however many attempts it made; it is available when it was acknowledged.
//! Refusals, 429s, timeouts, unknown outcomes and operations still pending at the end all
//! count against it. The fraction must be at least `min`. The evidence counts the
//! operations by outcome and lists the availability per `window` (default 2 s), so a
//! person sees when it dropped. Nothing invoked in range: nothing to judge (vacuous).

use super::operations::{
    attempt_load, client_ops, list_windows, outcome_counts, whose, windows, ClientOp,
};
use super::CheckResult;
use crate::history::{fmt_time, Entry};
use crate::scenario::CheckKind;
use std::ops::Range;
use std::time::Duration;

/// Most unacknowledged operations cited as evidence (by `availability` and `recovers`).
pub const MAX_CITED: usize = 100;

/// The `availability` check.
pub fn availability(
    history: &[Entry],
    min: f64,
    invoked: Range<u64>,
    clients: Option<&[String]>,
    window: Duration,
) -> CheckResult {
    let ops = client_ops(history, clients, invoked.clone());
    let who = whose(clients);
    let range = describe_range(&invoked);
    if ops.is_empty() {
        return CheckResult::vacuous(
            CheckKind::Availability,
            format!("no operation of {who} was invoked {range}: nothing to judge"),
        );
    }
    let acknowledged = ops.iter().filter(|op| op.acknowledged()).count();
    let fraction = acknowledged as f64 / ops.len() as f64;
    let series = windows(
        &ops,
        invoked.start,
        window_end(&ops, &invoked),
        window.as_nanos() as u64,
    );
    let detail = format!(
        "{fraction:.3} of {} operations of {who} invoked {range} acknowledged (min {min}): {}{}; per {} window: {}",
        ops.len(),
        outcome_counts(&ops),
        attempt_load(&ops),
        nodes::duration::format(window),
        list_windows(&series)
    );
    let result = CheckResult::new(CheckKind::Availability, fraction >= min, detail);
    if result.passed {
        return result;
    }
    // The unacknowledged operations, those of the worst window first.
    let worst = series.iter().filter(|w| w.total > 0).min_by(|a, b| {
        a.availability()
            .partial_cmp(&b.availability())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let in_worst =
        |op: &&ClientOp<'_>| worst.is_some_and(|w| (w.start..w.end).contains(&op.invoked));
    let failed = ops.iter().filter(|op| !op.acknowledged());
    let evidence = failed
        .clone()
        .filter(in_worst)
        .chain(failed.filter(|op| !in_worst(op)))
        .take(MAX_CITED)
        .flat_map(|op| op.cite("unacknowledged"))
        .collect();
    result.citing(evidence)
}

/// "from 10.000s until 30.000s", "over the whole run".
fn describe_range(invoked: &Range<u64>) -> String {
    match (invoked.start, invoked.end) {
        (0, u64::MAX) => "over the whole run".to_string(),
        (start, u64::MAX) => format!("from {}", fmt_time(start)),
        (0, end) => format!("before {}", fmt_time(end)),
        (start, end) => format!("from {} until {}", fmt_time(start), fmt_time(end)),
    }
}

/// The series runs from `from` (or the start) to `until`, or just after the last
/// invocation when that comes first.
fn window_end(ops: &[ClientOp<'_>], invoked: &Range<u64>) -> u64 {
    let last = ops.iter().map(|op| op.invoked).max().unwrap_or(0);
    invoked.end.min(last.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::operations::tests::{at, op, sorted};
    use crate::check::Status;
    use crate::history::{AttemptResult, OpType};

    /// Ten operations a second for 10 s; from 4 s to 6 s every one is shed with a 429.
    fn history() -> Vec<Entry> {
        let mut h = Vec::new();
        for i in 0..100 {
            let start = i * 100;
            if (4000..6000).contains(&start) {
                let shed = Some(AttemptResult::Answered { status: 429 });
                op(&mut h, "c1", i, start, 1, Some(OpType::Fail), shed);
            } else {
                op(&mut h, "c1", i, start, 10, Some(OpType::Ok), None);
            }
        }
        sorted(h)
    }

    const WINDOW: Duration = Duration::from_secs(2);

    #[test]
    fn enough_acknowledged_passes_with_counts_and_windows() {
        let r = availability(&history(), 0.75, 0..u64::MAX, None, WINDOW);
        assert_eq!(r.status, Status::Pass, "{}", r.detail);
        assert!(
            r.detail.starts_with(
                "0.800 of 100 operations of all clients invoked over the whole run acknowledged (min 0.75): ok 80, 429 20"
            ),
            "{}",
            r.detail
        );
        assert!(
            r.detail
                .contains("4.000s-6.000s 0.00 (0/20), 6.000s-8.000s 1.00 (20/20)"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn too_few_acknowledged_is_a_violation_that_shows_when() {
        let r = availability(&history(), 0.9, 0..u64::MAX, None, WINDOW);
        assert_eq!(r.status, Status::Violation, "{}", r.detail);
        assert!(
            r.detail.contains("0.000s-2.000s 1.00 (20/20)"),
            "{}",
            r.detail
        );
        assert!(
            r.detail.contains("4.000s-6.000s 0.00 (0/20)"),
            "{}",
            r.detail
        );
        // Judged only from 6 s, the outage is out of range.
        let r = availability(&history(), 0.9, at(6000)..u64::MAX, None, WINDOW);
        assert_eq!(r.status, Status::Pass, "{}", r.detail);
        assert!(r.detail.contains("40 operations"), "{}", r.detail);
    }

    #[test]
    fn pending_operations_count_against_and_no_operation_is_vacuous() {
        let mut h = history();
        op(&mut h, "c2", 0, 9950, 0, None, None);
        let c2 = ["c2".to_string()];
        let r = availability(&sorted(h.clone()), 0.5, 0..u64::MAX, Some(&c2), WINDOW);
        assert_eq!(r.status, Status::Violation, "{}", r.detail);
        assert!(r.detail.contains("pending 1"), "{}", r.detail);
        let r = availability(&h, 0.5, at(20_000)..at(30_000), None, WINDOW);
        assert_eq!(r.status, Status::Vacuous, "{}", r.detail);
        assert!(
            r.detail.contains("invoked from 20.000s until 30.000s"),
            "{}",
            r.detail
        );
    }
}
