//! `sim teach`: the failure modes the scenarios demonstrate, each as a pair — the failing
//! scenario (the seed's design) and its fixed sibling — with what the seed claimed and
//! the one command that shows both. `sim teach NAME` runs the pair and writes both pages.

/// One failure mode and the scenarios that show it.
#[derive(Clone, Copy, Debug)]
pub struct Lesson {
    /// Short name for `sim teach NAME`.
    pub name: &'static str,
    /// The failure mode.
    pub title: &'static str,
    /// What the workshop document said (the hypothesis the failing run tests).
    pub claim: &'static str,
    /// The scenario that shows the failure (relative to the repository root).
    pub failing: &'static str,
    /// The scenario with the fix, if there is one in this system.
    pub fixed: Option<&'static str>,
    /// Cause and fix in one or two sentences.
    pub lesson: &'static str,
}

/// The catalogue, in teaching order.
pub const LESSONS: &[Lesson] = &[
    Lesson {
        name: "split-brain",
        title: "split brain: two leaders sequence at once",
        claim: "seed 004: \"Term numbers prevent split-brain\"",
        failing: "scenarios/teaching/split-brain.toml",
        fixed: Some("scenarios/teaching/split-brain-fixed.toml"),
        lesson: "A partitioned leader keeps sequencing while the majority elects another; terms \
                 only order leaders that hear each other. A majority quorum makes the minority \
                 side unable to lead or commit.",
    },
    Lesson {
        name: "lost-acked-messages",
        title: "lost acknowledged messages after failover",
        claim: "seed 004: \"Prevents duplicate sequence numbers after failover\"",
        failing: "scenarios/teaching/lagging-leader-leader-commit.toml",
        fixed: Some("scenarios/teaching/lagging-leader-majority-commit.toml"),
        lesson: "With leader-only commit a lagging follower can win the election and reuse \
                 positions already acknowledged. Acknowledging after a majority stored the \
                 message, and syncing a new leader from a majority, keeps every ack.",
    },
    Lesson {
        name: "lost-acked-writes",
        title: "lost acknowledged writes: an ack from one copy",
        claim: "seed 000: \"a production-grade distributed node\"",
        failing: "scenarios/teaching/write-quorum-one-crash.toml",
        fixed: Some("scenarios/teaching/write-quorum-two-crash.toml"),
        lesson: "write_quorum = 1 acknowledges a write a cut-off node cannot replicate; its \
                 crash loses it. Waiting for a second copy refuses that ack instead of lying.",
    },
    Lesson {
        name: "lww-under-skew",
        title: "last-writer-wins under clock skew",
        claim: "seed 002 lists \"clock skew: timestamp ordering issues\" as a failure mode",
        failing: "scenarios/teaching/clock-skew-lww.toml",
        fixed: Some("scenarios/teaching/clock-skew-lamport.toml"),
        lesson: "Wall-clock versions let a node whose clock is behind lose its later writes. \
                 Lamport versions order a write after everything its node and client saw.",
    },
    Lesson {
        name: "divergent-replicas",
        title: "replicas that diverge for good",
        claim: "seed 000: \"Eventually everyone converges\"",
        failing: "scenarios/teaching/node-counter-concurrent-writes.toml",
        fixed: Some("scenarios/teaching/lamport-concurrent-writes.toml"),
        lesson: "Per-node counters give two concurrent writes the same version and each replica \
                 keeps its own. A total order on versions (a tie broken by node id) converges.",
    },
    Lesson {
        name: "stale-lease",
        title: "a stale lease under clock drift",
        claim: "the quorum lease assumes clocks drift apart by less than 25 %",
        failing: "scenarios/election/drifting-followers.toml",
        fixed: Some("scenarios/teaching/drift-within-the-lease-bound.toml"),
        lesson: "Followers whose clocks run fast elect a new leader while the old lease still \
                 runs: two leaders, even with a majority. Within the assumed drift it holds.",
    },
    Lesson {
        name: "round-robin-heterogeneous",
        title: "round robin over servers of unequal capacity",
        claim: "seed 001: \"Start load balancer with round robin (observe uneven latencies)\"",
        failing: "scenarios/teaching/round-robin-heterogeneous.toml",
        fixed: Some("scenarios/teaching/least-connections-heterogeneous.toml"),
        lesson: "Round robin gives the one-worker nodes as many requests as the four-worker \
                 one, more than they can do: their queues grow and latency with them. Least \
                 connections sends each request where fewest are in flight, where capacity is.",
    },
    Lesson {
        name: "retry-storm",
        title: "a retry storm: the outage outlives its trigger",
        claim: "seed 002 lists \"cascading failures: circuit breaker patterns\" as a failure mode",
        failing: "scenarios/teaching/retry-storm.toml",
        fixed: Some("scenarios/teaching/retry-storm-fixed.toml"),
        lesson: "One second of a slow node, immediate retries and nodes that finish work for \
                 clients that hung up: retries keep every queue past the timeout, so the \
                 cluster stays down. Backpressure, jittered backoff and breakers recover.",
    },
    Lesson {
        name: "backpressure",
        title: "unbounded queues: latency without limit",
        claim: "seed 001: \"When queue exceeds N, new requests get 429\"",
        failing: "scenarios/teaching/no-backpressure.toml",
        fixed: Some("scenarios/teaching/backpressure.toml"),
        lesson: "A slow node that accepts everything queues seconds of work, and every request \
                 it answers waits for it. A limit on requests in flight answers 429 at once: \
                 what is acknowledged stays fast, and the client retries elsewhere.",
    },
    Lesson {
        name: "circuit-breaker",
        title: "every write waits on a replica that does not answer",
        claim: "seed 001: \"Fails fast when downstream is unhealthy\"",
        failing: "scenarios/teaching/breaker-off.toml",
        fixed: Some("scenarios/teaching/breaker-on.toml"),
        lesson: "Without a breaker each write that needs the paused replica waits out the \
                 peer timeout. An open breaker refuses at once, so writes fail or succeed \
                 fast, and its half-open probe closes it once the replica is back.",
    },
    Lesson {
        name: "registry-single-point",
        title: "the registry dies, and nobody can join any more",
        claim: "seed 003: \"Decentralized: No single point of failure\" (gossip, against seed 000's registry)",
        failing: "scenarios/teaching/registry-single-point.toml",
        fixed: Some("scenarios/teaching/gossip-no-single-point.toml"),
        lesson: "With a registry, a server that restarts after the registry died can neither \
                 register nor learn the members: it stays alone. With SWIM gossip any live \
                 member answers a join, failures are detected by the members themselves, and \
                 killing the first join address changes nothing.",
    },
    Lesson {
        name: "rate-limit",
        title: "one greedy client drowns everyone",
        claim: "seed 001: \"Limits each client to N requests per second\"",
        failing: "scenarios/teaching/rate-limit-off.toml",
        fixed: Some("scenarios/teaching/rate-limit.toml"),
        lesson: "A client that sends far more than its share fills every queue, and the \
                 well-behaved clients time out behind its work. A token bucket per client \
                 refuses the greedy one with 429s before any work; the others keep their \
                 availability.",
    },
    Lesson {
        name: "cap",
        title: "available under partition, so not linearizable",
        claim: "seed 002: \"Cannot simultaneously guarantee all three\"",
        failing: "scenarios/teaching/cap-not-linearizable.toml",
        fixed: None,
        lesson: "Answering from one copy keeps the store available and makes it stale; there is \
                 no fixed sibling here, because linearizable reads need quorum reads, which \
                 this store (like the seed's) does not have.",
    },
];

/// The lesson called `name`.
pub fn find(name: &str) -> Option<&'static Lesson> {
    LESSONS.iter().find(|l| l.name == name)
}

/// The catalogue as text, one lesson per paragraph, with the command that shows each.
pub fn catalogue() -> String {
    let mut out = String::from("Failure modes the scenarios demonstrate:\n\n");
    for l in LESSONS {
        out.push_str(&format!("{:<20} {}\n", l.name, l.title));
        out.push_str(&format!("  claim:   {}\n", l.claim));
        out.push_str(&format!("  failing: {}\n", l.failing));
        match l.fixed {
            Some(fixed) => out.push_str(&format!("  fixed:   {fixed}\n")),
            None => out.push_str("  fixed:   (none in this system)\n"),
        }
        out.push_str(&format!("  {}\n", l.lesson));
        out.push_str(&format!(
            "  show:    cargo run -p sim -- teach {}\n\n",
            l.name
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every lesson's scenarios exist and load, the failing one expects a violation and
    /// the fixed one a pass, so the catalogue cannot drift from the files.
    #[test]
    fn every_lesson_names_a_failing_scenario_and_a_passing_sibling() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for lesson in LESSONS {
            let failing = crate::scenario::load(&root.join(lesson.failing))
                .unwrap_or_else(|e| panic!("{}: {e}", lesson.name));
            assert_ne!(
                failing.expect.get_ref().to_string(),
                "pass",
                "{}: the failing scenario expects a pass",
                lesson.name
            );
            if let Some(fixed) = lesson.fixed {
                let fixed = crate::scenario::load(&root.join(fixed))
                    .unwrap_or_else(|e| panic!("{}: {e}", lesson.name));
                assert_eq!(
                    fixed.expect.get_ref().to_string(),
                    "pass",
                    "{}",
                    lesson.name
                );
            }
            assert!(find(lesson.name).is_some());
        }
        assert!(catalogue().contains("teach split-brain"));
    }
}
