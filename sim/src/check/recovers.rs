//! `recovers`: once the trigger is gone, does the service come back and stay back?
//!
//! The judged span starts `within` after the last fault the history records (skipped
//! faults did nothing and are not counted; with no fault, `within` after the start) and
//! ends with the last client invocation. It is cut into windows of `window` (default 2 s)
//! by invocation time, and every window in which clients invoked anything must have
//! availability (acknowledged / invoked) of at least `min`. A system that stays down
//! after its trigger is gone — a metastable failure, such as a retry storm that keeps a
//! healed cluster saturated — fails it. The evidence is the first failing window and the
//! series of windows after the fault. No operation invoked in the span: vacuous.

use super::operations::{client_ops, list_windows, whose, windows};
use super::CheckResult;
use crate::history::{fmt_time, Entry, What};
use crate::scenario::CheckKind;
use std::time::Duration;

/// The `recovers` check.
pub fn recovers(
    history: &[Entry],
    min: f64,
    within: Duration,
    window: Duration,
    clients: Option<&[String]>,
) -> CheckResult {
    let last_fault = history
        .iter()
        .filter_map(|e| match &e.what {
            What::Fault { fault } if fault.skipped.is_none() => Some(e.t),
            _ => None,
        })
        .max();
    let from = match last_fault {
        Some(t) => format!("the last fault at {}", fmt_time(t)),
        None => "the start (no fault)".to_string(),
    };
    let start = last_fault
        .unwrap_or(0)
        .saturating_add(within.as_nanos() as u64);
    let ops = client_ops(history, clients, start..u64::MAX);
    let who = whose(clients);
    let Some(last) = ops.iter().map(|op| op.invoked).max() else {
        return CheckResult::vacuous(
            CheckKind::Recovers,
            format!(
                "no operation of {who} was invoked from {} ({} after {from}): nothing to judge",
                fmt_time(start),
                nodes::duration::format(within)
            ),
        );
    };
    let series = windows(
        &ops,
        start,
        last.saturating_add(1),
        window.as_nanos() as u64,
    );
    let judged = series.iter().filter(|w| w.total > 0).count();
    let header = format!(
        "{judged} windows of {} from {} ({} after {from}) to the last invocation at {}, {who}, min {min}",
        nodes::duration::format(window),
        fmt_time(start),
        nodes::duration::format(within),
        fmt_time(last)
    );
    let failing = series
        .iter()
        .find(|w| w.availability().is_some_and(|a| a < min));
    match failing {
        None => CheckResult::pass(
            CheckKind::Recovers,
            format!("{header}: every one available; {}", list_windows(&series)),
        ),
        Some(first) => {
            let below = series
                .iter()
                .filter(|w| w.availability().is_some_and(|a| a < min))
                .count();
            let evidence = ops
                .iter()
                .filter(|op| (first.start..first.end).contains(&op.invoked) && !op.acknowledged())
                .take(super::availability::MAX_CITED)
                .flat_map(|op| op.cite("unacknowledged in the first failing window"))
                .collect();
            CheckResult::violation(
                CheckKind::Recovers,
                format!(
                    "{header}: first below min: {}; {below} of {judged} windows below; series: {}",
                    first.describe(),
                    list_windows(&series)
                ),
            )
            .citing(evidence)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::operations::tests::{fault, op, sorted};
    use crate::check::Status;
    use crate::history::{AttemptResult, OpType};
    use crate::scenario::Action;

    /// Ten operations a second for 20 s; a crash at 5 s and a restart at 8 s; operations
    /// time out from 5 s until `down_until` ms.
    fn history(down_until: u64) -> Vec<Entry> {
        let mut h = Vec::new();
        fault(&mut h, 5000, Action::Crash);
        fault(&mut h, 8000, Action::Restart);
        for i in 0..200 {
            let start = i * 100;
            if (5000..down_until).contains(&start) {
                let timeout = Some(AttemptResult::Timeout);
                op(&mut h, "c1", i, start, 1000, Some(OpType::Info), timeout);
            } else {
                op(&mut h, "c1", i, start, 10, Some(OpType::Ok), None);
            }
        }
        sorted(h)
    }

    const WINDOW: Duration = Duration::from_secs(2);

    #[test]
    fn back_within_the_grace_period_passes() {
        let r = recovers(&history(9000), 0.9, Duration::from_secs(2), WINDOW, None);
        assert_eq!(r.status, Status::Pass, "{}", r.detail);
        assert!(
            r.detail.starts_with(
                "5 windows of 2s from 10.000s (2s after the last fault at 8.000s) to the last invocation at 19.900s"
            ),
            "{}",
            r.detail
        );
        assert!(
            r.detail.contains("10.000s-12.000s 1.00 (20/20)"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn staying_down_after_the_trigger_is_gone_is_a_violation() {
        // Metastable: the restart at 8 s changes nothing until 15 s.
        let r = recovers(&history(15_000), 0.9, Duration::from_secs(2), WINDOW, None);
        assert_eq!(r.status, Status::Violation, "{}", r.detail);
        assert!(
            r.detail
                .contains("first below min: 10.000s-12.000s 0.00 (0/20); 3 of 5 windows below"),
            "{}",
            r.detail
        );
        assert!(
            r.detail.contains("14.000s-16.000s 0.50 (10/20)"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn no_operation_after_the_grace_period_is_vacuous() {
        let r = recovers(&history(9000), 0.9, Duration::from_secs(30), WINDOW, None);
        assert_eq!(r.status, Status::Vacuous, "{}", r.detail);
        assert!(r.detail.contains("from 38.000s"), "{}", r.detail);
    }
}
