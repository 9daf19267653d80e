//! Everything serde cannot check, checked once at load: node names against `nodes` and
//! `[workload] clients`, which knobs and checks apply to which system, which parameters
//! each fault action takes, ranges and probabilities.

use super::*;
use std::ops::Range;
use toml::Spanned;

pub(super) type Invalid = (Range<usize>, &'static str, String);

/// Most servers in a scenario.
pub const MAX_SERVERS: usize = 64;
/// Most servers with gossip membership (seed 003 claims 100; Serf, thousands).
pub const MAX_GOSSIP_SERVERS: usize = 1000;

pub(super) fn validate(s: &Scenario) -> Result<(), Invalid> {
    let nodes = *s.nodes.get_ref();
    let most = if s.gossip_membership() {
        MAX_GOSSIP_SERVERS
    } else {
        MAX_SERVERS
    };
    if nodes == 0 || nodes > most {
        let more = if most == MAX_SERVERS {
            format!(" (up to {MAX_GOSSIP_SERVERS} with kv `membership = \"gossip\"`)")
        } else {
            String::new()
        };
        return Err((
            s.nodes.span(),
            "nodes",
            format!("expected 1 to {most} servers{more}"),
        ));
    }
    let clients = s.workload.as_ref().map_or(0, |w| *w.clients.get_ref());
    let names = Names {
        servers: nodes,
        clients,
        registry: s.system == System::Kv && !s.gossip_membership(),
        lb: s.lb.is_some(),
    };
    if let Some(latency) = &s.network.latency {
        check_range(latency, "latency")?;
    }
    if let Some(loss) = &s.network.loss {
        check_probability(loss, "loss")?;
    }
    validate_knobs(s)?;
    validate_clients(s, clients)?;
    if let Some(lb) = &s.lb {
        validate_lb(s.system, lb, nodes)?;
    }
    if let Some(w) = &s.workload {
        validate_workload(s.system, w)?;
        if let (Some(via), None) = (&w.via, &s.lb) {
            return Err((
                via.span(),
                "via",
                "`via = \"lb\"` needs a load balancer: add an [lb] table".into(),
            ));
        }
    }
    for fault in &s.faults {
        validate_fault(fault.get_ref(), &names, s.duration)?;
        let action = &fault.get_ref().action;
        if *action.get_ref() == Action::Slow && s.system != System::Kv {
            return Err((
                action.span(),
                "action",
                format!("action `slow` slows a KV server's per-request work (load_factor); {} servers have none", s.system),
            ));
        }
    }
    if let Some(n) = &s.nemesis {
        check_range(&n.interval, "interval")?;
        check_range(&n.heal_after, "heal_after")?;
        if n.interval.get_ref()[0].0.is_zero() {
            return Err((
                n.interval.span(),
                "interval",
                "the shortest interval must be above 0s".into(),
            ));
        }
        if let Some(max_down) = &n.max_down {
            if *max_down.get_ref() >= nodes {
                return Err((
                    max_down.span(),
                    "max_down",
                    format!("expected fewer than the {nodes} servers"),
                ));
            }
        }
        if n.kinds.is_empty() {
            return Err((0..0, "kinds", "the nemesis needs at least one kind".into()));
        }
        if let Some(slow) = n.kinds.iter().find(|k| *k.get_ref() == NemesisKind::Slow) {
            if s.system != System::Kv {
                return Err((
                    slow.span(),
                    "kinds",
                    format!("nemesis kind `slow` applies to kv, not to {}", s.system),
                ));
            }
        }
    }
    if s.checks.is_empty() {
        return Err((
            0..0,
            "check",
            "expected at least one [[check]] (what would the run prove?)".into(),
        ));
    }
    for check in &s.checks {
        let kind = check.get_ref().kind;
        if !kind.systems().contains(&s.system) {
            let systems: Vec<String> = kind.systems().iter().map(|s| s.to_string()).collect();
            return Err((
                check.span(),
                "kind",
                format!(
                    "check `{}` applies to {}, not to {}",
                    kind.name(),
                    systems.join(", "),
                    s.system
                ),
            ));
        }
        if let Some(within) = &check.get_ref().within {
            if !matches!(
                kind,
                CheckKind::LeaderElected
                    | CheckKind::Liveness
                    | CheckKind::Recovers
                    | CheckKind::MembershipConverged
            ) {
                return Err((
                    within.span(),
                    "within",
                    format!(
                        "`within` applies to checks leader_elected, liveness, recovers and membership_converged, not {}",
                        kind.name()
                    ),
                ));
            }
            if within.get_ref().0.is_zero() {
                return Err((
                    within.span(),
                    "within",
                    "expected a duration above 0s".into(),
                ));
            }
        }
        validate_client_check(check, &names, s.duration)?;
        if let Some(after) = &check.get_ref().after {
            if kind != CheckKind::Liveness {
                return Err((
                    after.span(),
                    "after",
                    format!("`after` applies to check liveness, not {}", kind.name()),
                ));
            }
            if *after.get_ref() > s.duration {
                return Err((
                    after.span(),
                    "after",
                    "expected a time within the run's duration".into(),
                ));
            }
        }
    }
    if let Expect::Checks(named) = s.expect.get_ref() {
        for kind in named {
            if !s.checks.iter().any(|c| c.get_ref().kind == *kind) {
                return Err((
                    s.expect.span(),
                    "expect",
                    format!(
                        "expects check `{}` to fail, but the scenario has no such [[check]]",
                        kind.name()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn validate_knobs(s: &Scenario) -> Result<(), Invalid> {
    check_knobs(s.system, &s.config)?;
    let nodes = s.server_count();
    for (name, knobs) in &s.servers {
        if server_index(name.get_ref(), nodes).is_none() {
            return Err((
                name.span(),
                "servers",
                format!(
                    "unknown server \"{}\": expected one of n1..n{nodes}",
                    name.get_ref()
                ),
            ));
        }
        check_knobs(s.system, knobs)?;
        if let Some(m) = &knobs.membership {
            return Err((
                m.span(),
                "membership",
                "membership is for the whole cluster: set it in [config]".into(),
            ));
        }
    }
    for index in 1..=nodes {
        check_together(&s.knobs_for(index))?;
    }
    // Breaker settings with no breaker to apply them to: a typo'd intent, not a default.
    let breaker_on = |index: usize| {
        s.knobs_for(index)
            .circuit_breaker
            .is_some_and(|b| *b.get_ref())
    };
    let tables = std::iter::once((&s.config, (1..=nodes).collect::<Vec<_>>())).chain(
        s.servers.iter().filter_map(|(name, knobs)| {
            server_index(name.get_ref(), nodes).map(|i| (knobs, vec![i]))
        }),
    );
    for (knobs, applies_to) in tables {
        let span = knobs
            .breaker_failures
            .as_ref()
            .map(|v| (v.span(), "breaker_failures"))
            .or_else(|| {
                knobs
                    .breaker_cooldown
                    .as_ref()
                    .map(|v| (v.span(), "breaker_cooldown"))
            });
        if let Some((span, key)) = span {
            if !applies_to.iter().any(|&i| breaker_on(i)) {
                return Err((
                    span,
                    key,
                    "needs `circuit_breaker = true` on the servers it applies to".into(),
                ));
            }
        }
    }
    Ok(())
}

/// `n3` -> 3, for servers `n1..n{nodes}`.
fn server_index(name: &str, nodes: usize) -> Option<usize> {
    let digits = name.strip_prefix('n')?;
    if digits.starts_with('0') {
        return None;
    }
    digits.parse().ok().filter(|i| (1..=nodes).contains(i))
}

/// Each knob of one table on its own: its system, its range.
fn check_knobs(system: System, k: &Knobs) -> Result<(), Invalid> {
    use System::*;
    let mut present: Vec<(&'static str, Range<usize>, &'static [System])> = Vec::new();
    macro_rules! knob {
        ($field:ident, $systems:expr) => {
            if let Some(v) = &k.$field {
                present.push((stringify!($field), v.span(), $systems));
            }
        };
    }
    knob!(heartbeat_interval, &[Election, Chat]);
    knob!(election_timeout, &[Election, Chat]);
    knob!(quorum, &[Election, Chat]);
    knob!(commit, &[Chat]);
    knob!(replication_factor, &[Kv]);
    knob!(virtual_nodes, &[Kv]);
    knob!(write_quorum, &[Kv]);
    knob!(versioning, &[Kv]);
    knob!(gossip_interval, &[Kv]);
    knob!(registry_heartbeat, &[Kv]);
    knob!(rate_limit, &[Kv]);
    knob!(backpressure, &[Kv]);
    knob!(circuit_breaker, &[Kv]);
    knob!(breaker_failures, &[Kv]);
    knob!(breaker_cooldown, &[Kv]);
    knob!(workers, &[Kv]);
    knob!(membership, &[Kv]);
    knob!(load_factor, &[Kv]);
    for (name, span, systems) in present {
        if !systems.contains(&system) {
            let systems: Vec<String> = systems.iter().map(|s| s.to_string()).collect();
            return Err((
                span,
                name,
                format!("knob applies to {}, not to {}", systems.join(", "), system),
            ));
        }
    }
    for (value, name) in [
        (&k.heartbeat_interval, "heartbeat_interval"),
        (&k.election_timeout, "election_timeout"),
        (&k.gossip_interval, "gossip_interval"),
        (&k.registry_heartbeat, "registry_heartbeat"),
        (&k.breaker_cooldown, "breaker_cooldown"),
    ] {
        if let Some(v) = value {
            if v.get_ref().0.is_zero() {
                return Err((v.span(), name, "expected a duration above 0s".into()));
            }
        }
    }
    for (value, name) in [
        (&k.replication_factor, "replication_factor"),
        (&k.virtual_nodes, "virtual_nodes"),
        (&k.write_quorum, "write_quorum"),
        (&k.rate_limit, "rate_limit"),
        (&k.backpressure, "backpressure"),
        (&k.breaker_failures, "breaker_failures"),
        (&k.workers, "workers"),
    ] {
        if let Some(v) = value {
            if *v.get_ref() == 0 {
                return Err((v.span(), name, "expected an integer of at least 1".into()));
            }
        }
    }
    if let Some(v) = &k.load_factor {
        nodes::kv::overload::load_factor(*v.get_ref())
            .map_err(|why| (v.span(), "load_factor", why))?;
    }
    Ok(())
}

/// Knobs that must agree, on one server's effective knobs.
fn check_together(k: &Knobs) -> Result<(), Invalid> {
    if let (Some(hb), Some(et)) = (&k.heartbeat_interval, &k.election_timeout) {
        if hb.get_ref().0 >= et.get_ref().0 {
            return Err((
                et.span(),
                "election_timeout",
                "expected a timeout longer than heartbeat_interval".into(),
            ));
        }
    }
    Ok(())
}

fn validate_lb(system: System, lb: &Spanned<Lb>, servers: usize) -> Result<(), Invalid> {
    if system != System::Kv {
        return Err((
            lb.span(),
            "lb",
            format!("[lb] applies to kv, not to {system}"),
        ));
    }
    let lb = lb.get_ref();
    if let Some(backends) = &lb.backends {
        if backends.get_ref().is_empty() {
            return Err((
                backends.span(),
                "backends",
                "expected at least one server (or leave `backends` out for every server)".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for name in backends.get_ref() {
            let text = name.get_ref();
            let index = text
                .strip_prefix('n')
                .filter(|n| !n.starts_with('0'))
                .and_then(|n| n.parse::<usize>().ok());
            if !index.is_some_and(|i| (1..=servers).contains(&i)) {
                return Err((
                    name.span(),
                    "backends",
                    format!("unknown server \"{text}\": expected one of n1..n{servers}"),
                ));
            }
            if !seen.insert(text.clone()) {
                return Err((
                    name.span(),
                    "backends",
                    format!("\"{text}\" is listed twice"),
                ));
            }
        }
    }
    if let Some(every) = &lb.health_interval {
        if every.get_ref().0.is_zero() {
            return Err((
                every.span(),
                "health_interval",
                "expected a duration above 0s".into(),
            ));
        }
    }
    Ok(())
}

fn validate_clients(s: &Scenario, clients: usize) -> Result<(), Invalid> {
    for (name, knobs) in &s.clients {
        let known = name
            .get_ref()
            .strip_prefix('c')
            .filter(|digits| !digits.starts_with('0'))
            .and_then(|digits| digits.parse::<usize>().ok())
            .is_some_and(|j| (1..=clients).contains(&j));
        if !known {
            let why = if clients == 0 {
                "[clients] tables need a [workload] with clients".to_string()
            } else {
                format!("expected one of c1..c{clients}")
            };
            return Err((
                name.span(),
                "clients",
                format!("unknown client \"{}\": {why}", name.get_ref()),
            ));
        }
        if let Some(ops) = &knobs.ops {
            if *ops.get_ref() > MAX_CLIENT_OPS {
                return Err((
                    ops.span(),
                    "ops",
                    format!("expected at most {MAX_CLIENT_OPS} operations"),
                ));
            }
        }
    }
    Ok(())
}

fn validate_workload(system: System, w: &Workload) -> Result<(), Invalid> {
    if *w.clients.get_ref() == 0 || *w.clients.get_ref() > 250 {
        return Err((
            w.clients.span(),
            "clients",
            "expected 1 to 250 clients".into(),
        ));
    }
    if system != System::Kv {
        if let Some(keys) = &w.keys {
            return Err((
                keys.span(),
                "keys",
                format!("applies to kv workloads, not {system}"),
            ));
        }
        if let Some(r) = &w.read_ratio {
            return Err((
                r.span(),
                "read_ratio",
                format!("applies to kv workloads, not {system}"),
            ));
        }
        if let Some(v) = &w.value_size {
            return Err((
                v.span(),
                "value_size",
                format!("applies to kv workloads, not {system}"),
            ));
        }
        let client_model = [
            ("timeout", w.timeout.as_ref().map(|v| v.span())),
            ("retries", w.retries.as_ref().map(|v| v.span())),
            ("retry_backoff", w.retry_backoff.as_ref().map(|v| v.span())),
            ("retry_base", w.retry_base.as_ref().map(|v| v.span())),
            ("arrival", w.arrival.as_ref().map(|v| v.span())),
        ];
        for (key, span) in client_model {
            if let Some(span) = span {
                let why = match system {
                    System::Chat => {
                        "the chat client has its own fixed retry policy (4 attempts of 1s, \
                         250ms apart, on other servers under one message id); the overload \
                         client model is kv's"
                    }
                    _ => "election clients send no operations",
                };
                return Err((
                    span,
                    key,
                    format!("applies to kv workloads, not {system}: {why}"),
                ));
            }
        }
        if let Some(v) = &w.via {
            return Err((
                v.span(),
                "via",
                format!("applies to kv workloads, not {system}"),
            ));
        }
    }
    validate_client_model(w)?;
    if let Some(v) = &w.value_size {
        if *v.get_ref() == 0 || *v.get_ref() > MAX_VALUE_SIZE {
            return Err((
                v.span(),
                "value_size",
                format!("expected 1 to {MAX_VALUE_SIZE} bytes"),
            ));
        }
    }
    if let Some(keys) = &w.keys {
        if *keys.get_ref() == 0 {
            return Err((keys.span(), "keys", "expected at least 1 key".into()));
        }
    }
    if let Some(r) = &w.read_ratio {
        check_probability(r, "read_ratio")?;
    }
    Ok(())
}

/// A check parameter: its key, where it was written (if it was), the checks it belongs to.
type Param = (&'static str, Option<Range<usize>>, &'static [CheckKind]);

/// The parameters of `latency`, `availability` and `recovers`: each only on the checks
/// it belongs to, the required ones present, every value in range.
fn validate_client_check(
    spanned: &Spanned<Check>,
    names: &Names,
    duration: Dur,
) -> Result<(), Invalid> {
    use CheckKind::*;
    let check = spanned.get_ref();
    let kind = check.kind;
    let span = |v: &Option<Spanned<Dur>>| v.as_ref().map(|v| v.span());
    let given: [Param; 8] = [
        ("max", span(&check.max), &[Latency]),
        (
            "percentile",
            check.percentile.as_ref().map(|v| v.span()),
            &[Latency],
        ),
        ("from", span(&check.from), &[Latency, Availability]),
        ("until", span(&check.until), &[Latency, Availability]),
        (
            "clients",
            check.clients.as_ref().map(|v| v.span()),
            &[Latency, Availability, Recovers],
        ),
        (
            "min",
            check.min.as_ref().map(|v| v.span()),
            &[Availability, Recovers],
        ),
        ("window", span(&check.window), &[Availability, Recovers]),
        (
            "max_false_downs",
            check.max_false_downs.as_ref().map(|v| v.span()),
            &[MembershipConverged],
        ),
    ];
    for (key, span, kinds) in &given {
        if let Some(span) = span {
            if !kinds.contains(&kind) {
                let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
                return Err((
                    span.clone(),
                    key,
                    format!(
                        "`{key}` applies to check {}, not {}",
                        names.join(", "),
                        kind.name()
                    ),
                ));
            }
        }
    }
    let required: &[&str] = match kind {
        Latency => &["max"],
        Availability => &["min"],
        Recovers => &["min", "within"],
        _ => &[],
    };
    for key in required {
        let present = match *key {
            "within" => check.within.is_some(),
            _ => given.iter().any(|(k, span, _)| k == key && span.is_some()),
        };
        if !present {
            return Err((
                spanned.span(),
                key,
                format!("check `{}` needs `{key}`", kind.name()),
            ));
        }
    }
    if let Some(max) = &check.max {
        if max.get_ref().0.is_zero() {
            return Err((max.span(), "max", "expected a duration above 0s".into()));
        }
    }
    if let Some(p) = &check.percentile {
        let v = *p.get_ref();
        if !(v > 0.0 && v <= 100.0) {
            return Err((
                p.span(),
                "percentile",
                format!("expected a percentile above 0 and at most 100, got {v}"),
            ));
        }
    }
    if let Some(min) = &check.min {
        check_probability(min, "min")?;
    }
    if let Some(window) = &check.window {
        if window.get_ref().0.is_zero() {
            return Err((
                window.span(),
                "window",
                "expected a duration above 0s".into(),
            ));
        }
    }
    for (end, key) in [(&check.from, "from"), (&check.until, "until")] {
        if let Some(end) = end {
            if *end.get_ref() > duration {
                return Err((
                    end.span(),
                    key,
                    "expected a time within the run's duration".into(),
                ));
            }
        }
    }
    if let (Some(from), Some(until)) = (&check.from, &check.until) {
        if from.get_ref() >= until.get_ref() {
            return Err((
                until.span(),
                "until",
                "expected `until` after `from`".into(),
            ));
        }
    }
    if let Some(clients) = &check.clients {
        if clients.get_ref().is_empty() {
            return Err((
                clients.span(),
                "clients",
                "expected at least one client (leave `clients` out for every client)".into(),
            ));
        }
        for client in clients.get_ref() {
            let text = client.get_ref();
            let number = text
                .strip_prefix('c')
                .filter(|n| !n.starts_with('0'))
                .and_then(|n| n.parse::<usize>().ok());
            if !number.is_some_and(|n| (1..=names.clients).contains(&n)) {
                let expected = if names.clients == 0 {
                    "the scenario has no [workload] clients".to_string()
                } else {
                    format!("expected one of c1..c{}", names.clients)
                };
                return Err((
                    client.span(),
                    "clients",
                    format!("unknown client \"{}\": {expected}", client.get_ref()),
                ));
            }
        }
    }
    Ok(())
}

/// `timeout`, `retries`, `retry_backoff`, `retry_base`: each only where it means something.
fn validate_client_model(w: &Workload) -> Result<(), Invalid> {
    if let Some(timeout) = &w.timeout {
        if timeout.get_ref().0.is_zero() {
            return Err((
                timeout.span(),
                "timeout",
                "expected a duration above 0s".into(),
            ));
        }
    }
    if let Some(retries) = &w.retries {
        if *retries.get_ref() > MAX_RETRIES {
            return Err((
                retries.span(),
                "retries",
                format!("expected 0 to {MAX_RETRIES} extra attempts"),
            ));
        }
        if *retries.get_ref() > 0 && w.timeout.is_none() {
            return Err((
                retries.span(),
                "retries",
                "a retrying client needs `timeout`: how long an attempt waits before it is \
                 retried"
                    .into(),
            ));
        }
    }
    if let Some(backoff) = &w.retry_backoff {
        if w.retry_count() == 0 {
            return Err((
                backoff.span(),
                "retry_backoff",
                "has no effect without `retries` above 0".into(),
            ));
        }
        if *backoff.get_ref() == Backoff::Exponential && w.retry_base.is_none() {
            return Err((
                backoff.span(),
                "retry_backoff",
                "`exponential` needs `retry_base`, the first retry's longest pause".into(),
            ));
        }
    }
    if let Some(base) = &w.retry_base {
        let exponential = w
            .retry_backoff
            .as_ref()
            .is_some_and(|b| *b.get_ref() == Backoff::Exponential);
        if !exponential {
            return Err((
                base.span(),
                "retry_base",
                "applies only with retry_backoff = \"exponential\"".into(),
            ));
        }
        if base.get_ref().0.is_zero() {
            return Err((
                base.span(),
                "retry_base",
                "expected a duration above 0s".into(),
            ));
        }
    }
    Ok(())
}

/// Which node names exist in a scenario.
struct Names {
    servers: usize,
    clients: usize,
    registry: bool,
    /// Whether `[lb]` puts node `lb` in the run.
    lb: bool,
}

impl Names {
    fn check(
        &self,
        name: &Spanned<String>,
        key: &'static str,
        selectors: bool,
    ) -> Result<(), Invalid> {
        let text = name.get_ref().as_str();
        let numbered = |prefix: char, count: usize| {
            text.strip_prefix(prefix)
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n >= 1 && n <= count && !text[1..].starts_with('0'))
        };
        let ok = numbered('n', self.servers)
            || numbered('c', self.clients)
            || (self.registry && text == "registry")
            || (self.lb && text == "lb")
            || (selectors && (text == "leader" || text == "random"));
        if ok {
            return Ok(());
        }
        let mut expected = format!("n1..n{}", self.servers);
        if self.clients > 0 {
            expected.push_str(&format!(", c1..c{}", self.clients));
        }
        if self.registry {
            expected.push_str(", registry");
        }
        if self.lb {
            expected.push_str(", lb");
        }
        if selectors {
            expected.push_str(", leader, random");
        }
        Err((
            name.span(),
            key,
            format!("unknown node \"{text}\": expected one of {expected}"),
        ))
    }
}

fn validate_fault(f: &Fault, names: &Names, duration: Dur) -> Result<(), Invalid> {
    let action = *f.action.get_ref();
    if f.at > duration {
        return Err((
            f.action.span(),
            "at",
            format!(
                "fault at {} is after the end of the run ({})",
                nodes::duration::format(f.at.0),
                nodes::duration::format(duration.0)
            ),
        ));
    }
    use Action::*;
    let (required, optional): (&[&str], &[&str]) = match action {
        Crash | Restart | Pause | Resume | Shutdown | Isolate => (&["node"], &[]),
        Partition => (&["groups"], &[]),
        Heal => (&[], &[]),
        Clog | Unclog => (&["from", "to"], &[]),
        Skew => (&["node"], &["offset", "drift"]),
        Loss => (&["rate"], &["from", "to"]),
        Latency => (&["range"], &["from", "to"]),
        Disk => (&["node", "mode"], &[]),
        Slow => (&["node", "factor"], &[]),
    };
    let given: [(&str, Option<Range<usize>>); 10] = [
        ("node", f.node.as_ref().map(|v| v.span())),
        ("groups", f.groups.as_ref().map(|v| v.span())),
        ("from", f.from.as_ref().map(|v| v.span())),
        ("to", f.to.as_ref().map(|v| v.span())),
        ("offset", f.offset.as_ref().map(|v| v.span())),
        ("drift", f.drift.as_ref().map(|v| v.span())),
        ("rate", f.rate.as_ref().map(|v| v.span())),
        ("range", f.range.as_ref().map(|v| v.span())),
        ("mode", f.mode.as_ref().map(|v| v.span())),
        ("factor", f.factor.as_ref().map(|v| v.span())),
    ];
    for (key, span) in &given {
        if let Some(span) = span {
            if !required.contains(key) && !optional.contains(key) {
                let takes = if required.is_empty() && optional.is_empty() {
                    "no parameters".to_string()
                } else {
                    required
                        .iter()
                        .chain(optional)
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err((
                    span.clone(),
                    key,
                    format!("action `{action}` does not take `{key}` (it takes {takes})"),
                ));
            }
        }
    }
    for key in required {
        if given.iter().any(|(k, span)| k == key && span.is_none()) {
            return Err((
                f.action.span(),
                key,
                format!("action `{action}` needs `{key}`"),
            ));
        }
    }
    let selectors = !matches!(action, Partition | Clog | Unclog | Loss | Latency);
    if let Some(node) = &f.node {
        names.check(node, "node", selectors)?;
        let server_only = matches!(action, Skew | Disk | Slow);
        if server_only
            && !node.get_ref().starts_with('n')
            && !matches!(node.get_ref().as_str(), "leader" | "random")
        {
            return Err((
                node.span(),
                "node",
                format!("action `{action}` applies to servers only"),
            ));
        }
    }
    for (end, key) in [(&f.from, "from"), (&f.to, "to")] {
        if let Some(end) = end {
            names.check(end, key, false)?;
        }
    }
    if matches!(action, Loss | Latency) && f.from.is_some() != f.to.is_some() {
        let span = f
            .from
            .as_ref()
            .or(f.to.as_ref())
            .map(|v| v.span())
            .unwrap_or(0..0);
        return Err((
            span,
            "from",
            "give both `from` and `to` for one link, or neither for every link".into(),
        ));
    }
    if let Some(groups) = &f.groups {
        let mut seen = std::collections::BTreeSet::new();
        if groups.get_ref().len() < 2 {
            return Err((
                groups.span(),
                "groups",
                "expected at least two groups".into(),
            ));
        }
        for name in groups.get_ref().iter().flatten() {
            names.check(name, "groups", false)?;
            if !seen.insert(name.get_ref().clone()) {
                return Err((
                    name.span(),
                    "groups",
                    format!("\"{}\" is in two groups", name.get_ref()),
                ));
            }
        }
    }
    if action == Skew && f.offset.is_none() && f.drift.is_none() {
        return Err((
            f.action.span(),
            "offset",
            "action `skew` needs `offset` and/or `drift`".into(),
        ));
    }
    if let Some(drift) = &f.drift {
        let d = *drift.get_ref();
        if !(d > -0.9 && d < 10.0) {
            return Err((
                drift.span(),
                "drift",
                "expected a rate error between -0.9 and 10 (0.02 = +2 %)".into(),
            ));
        }
    }
    if let Some(rate) = &f.rate {
        check_probability(rate, "rate")?;
    }
    if let Some(factor) = &f.factor {
        let x = *factor.get_ref();
        if !(1.0..=MAX_SLOW_FACTOR).contains(&x) {
            return Err((
                factor.span(),
                "factor",
                format!("expected a factor from 1 (normal speed) to {MAX_SLOW_FACTOR}, got {x}"),
            ));
        }
    }
    if let Some(range) = &f.range {
        check_range(range, "range")?;
    }
    Ok(())
}

/// Largest `slow` factor: past it a request's work outlasts any run.
pub const MAX_SLOW_FACTOR: f64 = 1000.0;

fn check_range(range: &Spanned<[Dur; 2]>, key: &'static str) -> Result<(), Invalid> {
    let [low, high] = range.get_ref();
    if low > high {
        return Err((
            range.span(),
            key,
            "expected [low, high] with low <= high".into(),
        ));
    }
    Ok(())
}

fn check_probability(p: &Spanned<f64>, key: &'static str) -> Result<(), Invalid> {
    let v = *p.get_ref();
    if !(0.0..=1.0).contains(&v) {
        return Err((
            p.span(),
            key,
            format!("expected a probability between 0 and 1, got {v}"),
        ));
    }
    Ok(())
}
