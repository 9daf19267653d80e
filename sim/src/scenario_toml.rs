//! Writes a [`Scenario`] back as a scenario file (used by `sim shrink`), in the contract's
//! format, so the result is a file a person can read, edit and commit.

use crate::scenario::{
    Arrival, Backoff, Commit, DiskMode, Dur, Expect, Fault, Knobs, Lb, LbStrategy, Scenario,
    Versioning, Via,
};
use nodes::duration::format as duration;
use std::fmt::Write;

fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn dur(d: Dur) -> String {
    quoted(&duration(d.0))
}

/// A float as TOML, exactly: `{}` is the shortest text that reads back to the same
/// number, and a whole number keeps a `.0` so TOML reads it as a float.
fn float(x: f64) -> String {
    toml::Value::Float(x).to_string()
}

fn range(r: &[Dur; 2]) -> String {
    format!("[{}, {}]", dur(r[0]), dur(r[1]))
}

/// The scenario as TOML, preceded by `header` lines as comments.
pub fn to_toml(s: &Scenario, header: &[String]) -> String {
    let mut out = String::new();
    for line in header {
        let _ = writeln!(out, "# {line}");
    }
    let _ = writeln!(out, "name = {}", quoted(&s.name));
    let _ = writeln!(out, "system = {}", quoted(&s.system.to_string()));
    let _ = writeln!(out, "nodes = {}", s.server_count());
    let _ = writeln!(out, "duration = {}", dur(s.duration));
    if let Some(d) = &s.description {
        let _ = writeln!(out, "description = {}", quoted(d));
    }
    if let Some(seed) = s.seed {
        let _ = writeln!(out, "seed = {seed}");
    }
    let expect = match s.expect.get_ref() {
        Expect::Checks(kinds) => {
            let names: Vec<String> = kinds.iter().map(|k| quoted(k.name())).collect();
            format!("{{ violation = [{}] }}", names.join(", "))
        }
        other => quoted(&other.to_string()),
    };
    let _ = writeln!(out, "expect = {expect}");
    if s.buggify {
        let _ = writeln!(out, "buggify = true");
    }
    if s.network.latency.is_some() || s.network.loss.is_some() {
        let _ = writeln!(out, "\n[network]");
        if let Some(l) = &s.network.latency {
            let _ = writeln!(out, "latency = {}", range(l.get_ref()));
        }
        if let Some(l) = &s.network.loss {
            let _ = writeln!(out, "loss = {}", float(*l.get_ref()));
        }
    }
    let config = knobs_toml(&s.config);
    if !config.is_empty() {
        let _ = write!(out, "\n[config]\n{config}");
    }
    for (server, knobs) in &s.servers {
        let _ = write!(
            out,
            "\n[servers.{}]\n{}",
            server.get_ref(),
            knobs_toml(knobs)
        );
    }
    if let Some(lb) = &s.lb {
        out.push_str(&lb_toml(lb.get_ref()));
    }
    if let Some(w) = &s.workload {
        let _ = writeln!(out, "\n[workload]");
        let _ = writeln!(out, "clients = {}", w.clients.get_ref());
        let _ = writeln!(out, "ops = {}", w.ops);
        // `{}` on an f64 is the shortest text that parses back to the same number.
        let _ = writeln!(out, "rate = {}", quoted(&format!("{}/s", w.rate.0)));
        if let Some(keys) = &w.keys {
            let _ = writeln!(out, "keys = {}", keys.get_ref());
        }
        if let Some(r) = &w.read_ratio {
            let _ = writeln!(out, "read_ratio = {}", float(*r.get_ref()));
        }
        if let Some(size) = &w.value_size {
            let _ = writeln!(out, "value_size = {}", size.get_ref());
        }
        if let Some(stop) = &w.stop {
            let _ = writeln!(out, "stop = {}", dur(*stop.get_ref()));
        }
        if let Some(timeout) = &w.timeout {
            let _ = writeln!(out, "timeout = {}", dur(*timeout.get_ref()));
        }
        if let Some(retries) = &w.retries {
            let _ = writeln!(out, "retries = {}", retries.get_ref());
        }
        if let Some(backoff) = &w.retry_backoff {
            let backoff = match backoff.get_ref() {
                Backoff::None => "none",
                Backoff::Exponential => "exponential",
            };
            let _ = writeln!(out, "retry_backoff = {}", quoted(backoff));
        }
        if let Some(base) = &w.retry_base {
            let _ = writeln!(out, "retry_base = {}", dur(*base.get_ref()));
        }
        if let Some(arrival) = &w.arrival {
            let arrival = match arrival.get_ref() {
                Arrival::Closed => "closed",
                Arrival::Open => "open",
            };
            let _ = writeln!(out, "arrival = {}", quoted(arrival));
        }
        if let Some(Via::Lb) = w.via.as_ref().map(|v| *v.get_ref()) {
            let _ = writeln!(out, "via = \"lb\"");
        }
    }
    for (client, knobs) in &s.clients {
        let _ = writeln!(out, "\n[clients.{}]", client.get_ref());
        if let Some(rate) = &knobs.rate {
            let _ = writeln!(out, "rate = {}", quoted(&format!("{}/s", rate.get_ref().0)));
        }
        if let Some(ops) = &knobs.ops {
            let _ = writeln!(out, "ops = {}", ops.get_ref());
        }
    }
    for fault in &s.faults {
        out.push_str(&fault_toml(fault.get_ref()));
    }
    for check in &s.checks {
        let check = check.get_ref();
        let _ = writeln!(out, "\n[[check]]\nkind = {}", quoted(check.kind.name()));
        if let Some(after) = &check.after {
            let _ = writeln!(out, "after = {}", dur(*after.get_ref()));
        }
        if check.allow_vacuous {
            let _ = writeln!(out, "allow_vacuous = true");
        }
        if let Some(within) = &check.within {
            let _ = writeln!(out, "within = {}", dur(*within.get_ref()));
        }
        if let Some(max) = &check.max {
            let _ = writeln!(out, "max = {}", dur(*max.get_ref()));
        }
        if let Some(p) = &check.percentile {
            let _ = writeln!(out, "percentile = {}", float(*p.get_ref()));
        }
        if let Some(from) = &check.from {
            let _ = writeln!(out, "from = {}", dur(*from.get_ref()));
        }
        if let Some(until) = &check.until {
            let _ = writeln!(out, "until = {}", dur(*until.get_ref()));
        }
        if let Some(clients) = &check.clients {
            let names: Vec<String> = clients
                .get_ref()
                .iter()
                .map(|c| quoted(c.get_ref()))
                .collect();
            let _ = writeln!(out, "clients = [{}]", names.join(", "));
        }
        if let Some(min) = &check.min {
            let _ = writeln!(out, "min = {}", float(*min.get_ref()));
        }
        if let Some(window) = &check.window {
            let _ = writeln!(out, "window = {}", dur(*window.get_ref()));
        }
    }
    out
}

fn lb_toml(lb: &Lb) -> String {
    let mut out = String::from("\n[lb]\n");
    if let Some(strategy) = &lb.strategy {
        let name = match strategy.get_ref() {
            LbStrategy::RoundRobin => "round_robin",
            LbStrategy::LeastConnections => "least_connections",
        };
        let _ = writeln!(out, "strategy = {}", quoted(name));
    }
    if let Some(backends) = &lb.backends {
        let names: Vec<String> = backends
            .get_ref()
            .iter()
            .map(|n| quoted(n.get_ref()))
            .collect();
        let _ = writeln!(out, "backends = [{}]", names.join(", "));
    }
    if let Some(every) = &lb.health_interval {
        let _ = writeln!(out, "health_interval = {}", dur(*every.get_ref()));
    }
    out
}

/// The knobs one table sets, one `name = value` line each.
fn knobs_toml(k: &Knobs) -> String {
    let mut config = String::new();
    let mut knob = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            let _ = writeln!(config, "{name} = {v}");
        }
    };
    let int = |v: &Option<toml::Spanned<u32>>| v.as_ref().map(|v| v.get_ref().to_string());
    let time = |v: &Option<toml::Spanned<Dur>>| v.as_ref().map(|v| dur(*v.get_ref()));
    let flag = |v: &Option<toml::Spanned<bool>>| v.as_ref().map(|v| v.get_ref().to_string());
    knob("heartbeat_interval", time(&k.heartbeat_interval));
    knob("election_timeout", time(&k.election_timeout));
    knob("quorum", flag(&k.quorum));
    knob(
        "commit",
        k.commit.as_ref().map(|v| {
            quoted(match v.get_ref() {
                Commit::Majority => "majority",
                Commit::Leader => "leader",
            })
        }),
    );
    knob("replication_factor", int(&k.replication_factor));
    knob("virtual_nodes", int(&k.virtual_nodes));
    knob("write_quorum", int(&k.write_quorum));
    knob(
        "versioning",
        k.versioning.as_ref().map(|v| {
            quoted(match v.get_ref() {
                Versioning::Lamport => "lamport",
                Versioning::NodeCounter => "node_counter",
                Versioning::WallClock => "wall_clock",
            })
        }),
    );
    knob("gossip_interval", time(&k.gossip_interval));
    knob("registry_heartbeat", time(&k.registry_heartbeat));
    knob("rate_limit", int(&k.rate_limit));
    knob("backpressure", int(&k.backpressure));
    knob("circuit_breaker", flag(&k.circuit_breaker));
    knob("breaker_failures", int(&k.breaker_failures));
    knob("breaker_cooldown", time(&k.breaker_cooldown));
    knob("workers", int(&k.workers));
    knob(
        "load_factor",
        k.load_factor.as_ref().map(|v| float(*v.get_ref())),
    );
    config
}

fn fault_toml(f: &Fault) -> String {
    let mut out = String::from("\n[[fault]]\n");
    let _ = writeln!(out, "at = {}", dur(f.at));
    let action = f.action.get_ref();
    let _ = writeln!(out, "action = {}", quoted(&action.to_string()));
    if let Some(node) = &f.node {
        let _ = writeln!(out, "node = {}", quoted(node.get_ref()));
    }
    if let Some(groups) = &f.groups {
        let groups: Vec<String> = groups
            .get_ref()
            .iter()
            .map(|g| {
                format!(
                    "[{}]",
                    g.iter()
                        .map(|n| quoted(n.get_ref()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        let _ = writeln!(out, "groups = [{}]", groups.join(", "));
    }
    if let Some(from) = &f.from {
        let _ = writeln!(out, "from = {}", quoted(from.get_ref()));
    }
    if let Some(to) = &f.to {
        let _ = writeln!(out, "to = {}", quoted(to.get_ref()));
    }
    if let Some(offset) = &f.offset {
        let ms = offset.get_ref().0;
        let sign = if ms < 0 { "-" } else { "+" };
        let _ = writeln!(out, "offset = {}", quoted(&format!("{sign}{}ms", ms.abs())));
    }
    if let Some(drift) = &f.drift {
        let _ = writeln!(out, "drift = {}", float(*drift.get_ref()));
    }
    if let Some(rate) = &f.rate {
        let _ = writeln!(out, "rate = {}", float(*rate.get_ref()));
    }
    if let Some(r) = &f.range {
        let _ = writeln!(out, "range = {}", range(r.get_ref()));
    }
    if let Some(factor) = &f.factor {
        let _ = writeln!(out, "factor = {}", float(*factor.get_ref()));
    }
    if let Some(mode) = &f.mode {
        let mode = match mode.get_ref() {
            DiskMode::Tear => "tear",
            DiskMode::Corrupt => "corrupt",
        };
        let _ = writeln!(out, "mode = {}", quoted(mode));
    }
    // Only a fault that draws needs its identity written: it keeps its draws in the
    // smaller file (the others would get a new position, which changes nothing).
    if let (true, Some(id)) = (f.draws(), &f.id) {
        let _ = writeln!(out, "id = {}", id.get_ref());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{parse, Action, Rate};
    use std::time::Duration;
    use toml::Spanned;

    #[test]
    fn written_numbers_read_back_exactly() {
        let mut s = parse(
            "base.toml",
            "name = \"x\"\nsystem = \"kv\"\nnodes = 3\nduration = \"30s\"\n\
             [network]\nloss = 0.1\n[workload]\nops = 10\n[[check]]\nkind = \"converged\"\n",
        )
        .unwrap();
        s.duration = Dur(Duration::from_nanos(22_926_123_457));
        s.network.loss = Some(Spanned::new(0..0, 0.1 + 0.2));
        if let Some(w) = s.workload.as_mut() {
            w.rate = Rate(10.0 * 2.0 / 3.0);
        }
        let mut skew = Fault::new(Duration::from_nanos(1_234_567_891), Action::Skew).node("n2");
        skew.drift = Some(Spanned::new(0..0, -0.111_111_111_111_1));
        let mut loss = Fault::new(Duration::from_nanos(5), Action::Loss).link("n1", "n2");
        loss.rate = Some(Spanned::new(0..0, 1.0 / 3.0));
        loss.id = Some(Spanned::new(0..0, 42));
        let mut whole = Fault::new(Duration::from_secs(2), Action::Loss);
        whole.rate = Some(Spanned::new(0..0, 0.0));
        s.faults = [skew, loss, whole]
            .into_iter()
            .map(|f| Spanned::new(0..0, f))
            .collect();
        let text = to_toml(&s, &[]);
        let back = parse("back.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back.duration, s.duration, "{text}");
        assert_eq!(back.network.loss.map(|l| l.into_inner()), Some(0.1 + 0.2));
        assert_eq!(back.workload.unwrap().rate.0, 10.0 * 2.0 / 3.0, "{text}");
        let faults: Vec<Fault> = back.faults.into_iter().map(|f| f.into_inner()).collect();
        assert_eq!(faults[0].at.0, Duration::from_nanos(1_234_567_891));
        assert_eq!(
            faults[0].drift.as_ref().map(|d| *d.get_ref()),
            Some(-0.111_111_111_111_1)
        );
        assert_eq!(faults[1].at.0, Duration::from_nanos(5));
        assert_eq!(
            faults[1].rate.as_ref().map(|r| *r.get_ref()),
            Some(1.0 / 3.0)
        );
        assert_eq!(faults[1].id.as_ref().map(|i| *i.get_ref()), Some(42));
        assert_eq!(faults[2].rate.as_ref().map(|r| *r.get_ref()), Some(0.0));
    }

    #[test]
    fn middleware_knobs_overrides_and_slow_faults_read_back() {
        let text = "name = \"x\"\nsystem = \"kv\"\nnodes = 3\nduration = \"30s\"\n\
             [config]\nrate_limit = 5\nbackpressure = 8\ncircuit_breaker = true\n\
             breaker_failures = 2\nbreaker_cooldown = \"1500ms\"\nworkers = 4\nload_factor = 12.5\n\
             [servers.n2]\nworkers = 1\nload_factor = 25\n\
             [workload]\nclients = 3\n[clients.c2]\nrate = \"120/s\"\nops = 900\n\
             [[fault]]\nat = \"3s\"\naction = \"slow\"\nnode = \"n2\"\nfactor = 7.5\n\
             [[check]]\nkind = \"converged\"\n";
        let s = parse("base.toml", text).unwrap();
        let written = to_toml(&s, &[]);
        let back = parse("back.toml", &written).unwrap_or_else(|e| panic!("{e}\n{written}"));
        assert_eq!(to_toml(&back, &[]), written);
        for index in 1..=3 {
            let (a, b) = (s.knobs_for(index), back.knobs_for(index));
            assert_eq!(
                format!("{:?}", strip(&a)),
                format!("{:?}", strip(&b)),
                "n{index}"
            );
        }
        assert_eq!(back.knobs_for(2).workers.map(|w| w.into_inner()), Some(1));
        assert_eq!(
            back.knobs_for(3).load_factor.map(|l| l.into_inner()),
            Some(12.5)
        );
        let slow = back.faults[0].get_ref();
        assert_eq!(slow.factor.as_ref().map(|f| *f.get_ref()), Some(7.5));
        let c2 = back.clients.get("c2").expect("[clients.c2] kept");
        assert_eq!(c2.rate.as_ref().map(|r| r.get_ref().0), Some(120.0));
        assert_eq!(c2.ops.as_ref().map(|o| *o.get_ref()), Some(900));
    }

    /// A knob table's values without their spans (which differ between the two files).
    fn strip(k: &Knobs) -> Vec<Option<String>> {
        vec![
            k.rate_limit.as_ref().map(|v| v.get_ref().to_string()),
            k.backpressure.as_ref().map(|v| v.get_ref().to_string()),
            k.circuit_breaker.as_ref().map(|v| v.get_ref().to_string()),
            k.breaker_failures.as_ref().map(|v| v.get_ref().to_string()),
            k.breaker_cooldown
                .as_ref()
                .map(|v| format!("{:?}", v.get_ref())),
            k.workers.as_ref().map(|v| v.get_ref().to_string()),
            k.load_factor.as_ref().map(|v| v.get_ref().to_string()),
        ]
    }

    #[test]
    fn the_overload_client_model_and_its_checks_are_written_back() {
        let text = "name = \"x\"\nsystem = \"kv\"\nnodes = 3\nduration = \"30s\"\n\
             [workload]\nclients = 2\nops = 10\ntimeout = \"300ms\"\nretries = 3\n\
             retry_backoff = \"exponential\"\nretry_base = \"50ms\"\narrival = \"open\"\n\
             [[check]]\nkind = \"latency\"\nmax = \"1s\"\npercentile = 99.9\nfrom = \"1s\"\n\
             until = \"20s\"\nclients = [\"c2\"]\n\
             [[check]]\nkind = \"recovers\"\nmin = 0.9\nwithin = \"4s\"\nwindow = \"1s\"\n";
        let s = parse("base.toml", text).unwrap();
        let back_text = to_toml(&s, &[]);
        let back = parse("back.toml", &back_text).unwrap_or_else(|e| panic!("{e}\n{back_text}"));
        assert_eq!(to_toml(&back, &[]), back_text);
        for line in [
            "timeout = \"300ms\"",
            "retries = 3",
            "retry_backoff = \"exponential\"",
            "retry_base = \"50ms\"",
            "arrival = \"open\"",
            "percentile = 99.9",
            "clients = [\"c2\"]",
            "min = 0.9",
            "window = \"1s\"",
        ] {
            assert!(back_text.contains(line), "{line} missing:\n{back_text}");
        }
    }

    #[test]
    fn the_balancer_and_via_are_written_back() {
        let s = parse(
            "lb.toml",
            "name = \"x\"\nsystem = \"kv\"\nnodes = 3\nduration = \"30s\"\n\
             [lb]\nstrategy = \"least_connections\"\nbackends = [\"n3\", \"n1\"]\n\
             health_interval = \"250ms\"\n[workload]\nvia = \"lb\"\n\
             [[check]]\nkind = \"converged\"\n",
        )
        .unwrap();
        let text = to_toml(&s, &[]);
        let back = parse("back.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let lb = back.lb.expect("[lb] kept").into_inner();
        assert_eq!(
            lb.strategy.map(|s| s.into_inner()),
            Some(LbStrategy::LeastConnections)
        );
        let backends: Vec<String> = lb
            .backends
            .expect("backends kept")
            .into_inner()
            .into_iter()
            .map(|b| b.into_inner())
            .collect();
        assert_eq!(backends, ["n3", "n1"]);
        assert_eq!(
            lb.health_interval.map(|d| d.into_inner().0),
            Some(Duration::from_millis(250))
        );
        let via = back.workload.and_then(|w| w.via).map(|v| v.into_inner());
        assert_eq!(via, Some(Via::Lb), "{text}");
    }
}
