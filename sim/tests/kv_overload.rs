//! The overload scenario exercises what it claims to: the history shows rate-limit and
//! backpressure refusals where its text says they happen, the breakers on the paused
//! node open and close again, and the slow fault was applied — so its passing checks are
//! not a pass by saying nothing.

use nodes::runtime::{BreakerState, NodeEvent};
use sim::history::{Entry, OpType, What};
use sim::run::run_scenario;
use sim::scenario::{load, Action};
use std::path::Path;

const FILE: &str = "scenarios/kv/overload-middleware.toml";
const SECOND: u64 = 1_000_000_000;

fn history() -> Vec<Entry> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(FILE);
    let scenario = load(&path).expect("the scenario loads");
    let finished = run_scenario(&scenario, FILE, 1).expect("it runs");
    assert!(finished.report.passed(), "{FILE} passes its checks");
    finished.history
}

/// Failed client operations whose error text says `why`: (time, server).
fn refusals(history: &[Entry], why: &str) -> Vec<(u64, String)> {
    history
        .iter()
        .filter_map(|e| match &e.what {
            What::Op { op } if op.kind == OpType::Fail => op
                .detail
                .as_deref()
                .filter(|d| d.starts_with("HTTP 429") && d.contains(why))
                .map(|_| (e.t, op.server.clone().unwrap_or_default())),
            _ => None,
        })
        .collect()
}

#[test]
fn overload_scenario_refuses_breaks_and_recovers_where_its_text_says() {
    let history = history();

    let limited = refusals(&history, "rate limit exceeded");
    assert!(limited.len() > 100, "{} rate-limit refusals", limited.len());

    // Backpressure refuses on the slow n2 while it is slow (5 s to 20 s, plus the
    // queue it still holds when it speeds up), nearly nowhere else.
    let shed = refusals(&history, "overloaded");
    let on_slow_n2 = shed
        .iter()
        .filter(|(t, server)| server == "n2" && (5 * SECOND..22 * SECOND).contains(t))
        .count();
    assert!(on_slow_n2 >= 20, "{on_slow_n2} refusals on the slow n2");
    assert!(on_slow_n2 * 10 >= shed.len() * 9, "{shed:?}");

    // The breakers of n1 and n2 on n3 open while n3 is paused (12 s to 17 s) and end
    // closed after it resumes, through a half-open probe.
    for node in ["n1", "n2"] {
        let changes: Vec<(u64, BreakerState, BreakerState)> = history
            .iter()
            .filter(|e| e.node == node)
            .filter_map(|e| match &e.what {
                What::Event {
                    data: NodeEvent::Breaker { peer, from, to, .. },
                } if peer == "n3" => Some((e.t, *from, *to)),
                _ => None,
            })
            .collect();
        let opened = changes
            .iter()
            .find(|(_, from, to)| (*from, *to) == (BreakerState::Closed, BreakerState::Open));
        assert!(
            opened.is_some_and(|(t, _, _)| (12 * SECOND..17 * SECOND).contains(t)),
            "{node}: {changes:?}"
        );
        let last = changes.last().copied();
        assert!(
            last.is_some_and(|(t, from, to)| t > 17 * SECOND
                && (from, to) == (BreakerState::HalfOpen, BreakerState::Closed)),
            "{node}: {changes:?}"
        );
    }

    let slowed: Vec<(Option<String>, Option<f64>)> = history
        .iter()
        .filter_map(|e| match &e.what {
            What::Fault { fault } if fault.action == Action::Slow && fault.skipped.is_none() => {
                Some((fault.node.clone(), fault.factor))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        slowed,
        [
            (Some("n2".into()), Some(10.0)),
            (Some("n2".into()), Some(1.0))
        ]
    );
}

/// Client `client`'s operations in `file`'s history at seed 1: (invoked, acknowledged,
/// every answered attempt's HTTP status, attempts that got no answer).
fn client_outcomes(file: &str, client: &str) -> (usize, usize, Vec<u16>, usize) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
    let scenario = load(&path).expect("the scenario loads");
    let finished = run_scenario(&scenario, file, 1).expect("it runs");
    assert!(finished.report.passed(), "{file} meets its expect");
    let (mut invoked, mut ok, mut statuses, mut unanswered) = (0, 0, Vec::new(), 0);
    for entry in finished.history.iter().filter(|e| e.node == client) {
        let What::Op { op } = &entry.what else {
            continue;
        };
        match op.kind {
            OpType::Invoke => invoked += 1,
            OpType::Ok => ok += 1,
            _ => {}
        }
        for attempt in &op.attempts {
            match attempt.result.status() {
                Some(status) => statuses.push(status),
                None => unanswered += 1,
            }
        }
    }
    (invoked, ok, statuses, unanswered)
}

#[test]
fn rate_limit_refuses_the_greedy_client_with_429s_and_only_it() {
    // With the limit: c1, twelve times over its 20/s per node, is refused with 429s for
    // most of its operations, at once (no timeouts), while a well-behaved client is
    // never refused.
    let (invoked, ok, statuses, unanswered) =
        client_outcomes("scenarios/teaching/rate-limit.toml", "c1");
    assert!(invoked > 9000, "c1 invoked {invoked}");
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused * 10 > invoked * 8, "{refused} of {invoked} refused");
    assert_eq!(refused + ok, invoked, "every c1 operation is a 429 or ok");
    assert_eq!(unanswered, 0, "a refusal comes back at once");
    let (invoked, ok, statuses, _) = client_outcomes("scenarios/teaching/rate-limit.toml", "c2");
    assert_eq!(ok, invoked, "c2 keeps its availability");
    assert!(!statuses.contains(&429), "c2 is never rate limited");

    // Without it nobody is refused, and the well-behaved client's requests time out in
    // the greedy one's queue.
    let (invoked, ok, statuses, unanswered) =
        client_outcomes("scenarios/teaching/rate-limit-off.toml", "c2");
    assert!(!statuses.contains(&429));
    assert!(ok * 5 < invoked, "c2: {ok} of {invoked} acknowledged");
    assert!(
        unanswered * 2 > invoked,
        "c2: {unanswered} timeouts of {invoked}"
    );
}
