//! `latency`: were acknowledged operations answered fast enough?
//!
//! The response time of a client operation is its invocation to its acknowledgement
//! (retries and backoff included: the client waited for all of them). The check takes
//! the acknowledged operations invoked within `from`..`until` (of `clients`, when given),
//! and their `percentile` (nearest rank) must be at most `max`. Operations that were
//! never acknowledged have no response time: `availability` judges them. No acknowledged
//! operation in range: nothing to judge (vacuous).

use super::operations::{attempt_load, client_ops, ms, whose, ClientOp};
use super::{CheckResult, Cited};
use crate::scenario::CheckKind;
use std::ops::Range;
use std::time::Duration;

/// How many of the slowest operations the evidence names.
pub const WORST_SHOWN: usize = 5;

/// The `latency` check.
pub fn latency(
    history: &[crate::history::Entry],
    max: Duration,
    percentile: f64,
    invoked: Range<u64>,
    clients: Option<&[String]>,
) -> CheckResult {
    let ops = client_ops(history, clients, invoked);
    let mut acked: Vec<(u64, &ClientOp<'_>)> = ops
        .iter()
        .filter_map(|op| op.response_time().map(|rt| (rt, op)))
        .collect();
    let who = whose(clients);
    if acked.is_empty() {
        return CheckResult::vacuous(
            CheckKind::Latency,
            format!(
                "no acknowledged operation of {who} in range ({} invoked): no response time to judge",
                ops.len()
            ),
        );
    }
    // Slowest first; ties by invocation, so the evidence is the same every run.
    acked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.invoked.cmp(&b.1.invoked)));
    let value = nearest_rank(&acked, percentile);
    let at_rank = nearest_rank_op(&acked, percentile);
    let limit = max.as_nanos() as u64;
    let worst: Vec<String> = acked
        .iter()
        .take(WORST_SHOWN)
        .map(|(rt, op)| format!("{} took {}", op.describe(), ms(*rt)))
        .collect();
    let summary = format!(
        "p{percentile} = {} over {} acknowledged operations of {who} (max {}){}; slowest: {}",
        ms(value),
        acked.len(),
        ms(limit),
        attempt_load(&ops),
        worst.join("; ")
    );
    if value <= limit {
        CheckResult::pass(CheckKind::Latency, summary)
    } else {
        let over = acked.iter().filter(|(rt, _)| *rt > limit).count();
        let mut evidence: Vec<Cited> = acked
            .iter()
            .take(WORST_SHOWN)
            .flat_map(|(_, op)| op.cite("slowest"))
            .collect();
        if !evidence.iter().any(|c| c.entry == at_rank.invoke_entry) {
            evidence.extend(at_rank.cite("at the percentile"));
        }
        CheckResult::violation(
            CheckKind::Latency,
            format!(
                "{summary}; {over} operations took longer than {}",
                ms(limit)
            ),
        )
        .citing(evidence)
    }
}

/// The operation at the nearest-rank `percentile` of `slowest_first` (not empty).
fn nearest_rank_op<'a>(
    slowest_first: &[(u64, &'a ClientOp<'a>)],
    percentile: f64,
) -> &'a ClientOp<'a> {
    slowest_first[rank_index(slowest_first.len(), percentile)].1
}

/// Where the nearest-rank `percentile` of `n` values sorted slowest first is.
fn rank_index(n: usize, percentile: f64) -> usize {
    let rank = ((percentile / 100.0) * n as f64).ceil() as usize; // 1-based, ascending
    n - 1 - (rank.clamp(1, n) - 1)
}

/// The nearest-rank `percentile` of response times sorted slowest first.
fn nearest_rank(slowest_first: &[(u64, &ClientOp<'_>)], percentile: f64) -> u64 {
    slowest_first[rank_index(slowest_first.len(), percentile)].0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::operations::tests::{at, op, sorted};
    use crate::check::Status;
    use crate::history::{AttemptResult, OpType};

    /// c1: 100 operations of 10 ms each; c2: 3 of them take 900 ms.
    fn history(slow: usize) -> Vec<crate::history::Entry> {
        let mut h = Vec::new();
        for i in 0..100 {
            let took = if i < slow as u64 { 900 } else { 10 };
            op(&mut h, "c1", i, i * 100, took, Some(OpType::Ok), None);
        }
        op(
            &mut h,
            "c2",
            0,
            50,
            2000,
            Some(OpType::Info),
            Some(AttemptResult::Timeout),
        );
        sorted(h)
    }

    #[test]
    fn p99_under_max_passes_with_the_value_and_count() {
        let r = latency(
            &history(1),
            Duration::from_millis(100),
            99.0,
            0..u64::MAX,
            None,
        );
        assert_eq!(r.status, Status::Pass, "{}", r.detail);
        assert!(
            r.detail
                .starts_with("p99 = 10 ms over 100 acknowledged operations"),
            "{}",
            r.detail
        );
        // The one slow operation is named first among the slowest.
        assert!(
            r.detail
                .contains("slowest: c1 put k0 invoked 0.000s took 900 ms"),
            "{}",
            r.detail
        );
    }

    #[test]
    fn p99_over_max_is_a_violation_naming_the_worst_operations() {
        let r = latency(
            &history(3),
            Duration::from_millis(100),
            99.0,
            0..u64::MAX,
            None,
        );
        assert_eq!(r.status, Status::Violation, "{}", r.detail);
        assert!(r.detail.starts_with("p99 = 900 ms"), "{}", r.detail);
        assert!(
            r.detail.contains("c1 put k2 invoked 0.200s took 900 ms"),
            "{}",
            r.detail
        );
        assert!(
            r.detail.ends_with("3 operations took longer than 100 ms"),
            "{}",
            r.detail
        );
        // The median is still fast.
        let p50 = latency(
            &history(3),
            Duration::from_millis(100),
            50.0,
            0..u64::MAX,
            None,
        );
        assert_eq!(p50.status, Status::Pass, "{}", p50.detail);
    }

    #[test]
    fn from_until_and_clients_narrow_what_is_judged() {
        // The three slow ones were invoked before 0.3s: judged from 1s, they are gone.
        let r = latency(
            &history(3),
            Duration::from_millis(100),
            99.0,
            at(1000)..u64::MAX,
            None,
        );
        assert_eq!(r.status, Status::Pass, "{}", r.detail);
        assert!(r.detail.contains("over 90 acknowledged"), "{}", r.detail);
        // c2 has no acknowledged operation: nothing to judge.
        let c2 = ["c2".to_string()];
        let r = latency(
            &history(3),
            Duration::from_millis(100),
            99.0,
            0..u64::MAX,
            Some(&c2),
        );
        assert_eq!(r.status, Status::Vacuous, "{}", r.detail);
        assert!(
            r.detail.contains("of clients c2 in range (1 invoked)"),
            "{}",
            r.detail
        );
    }
}
