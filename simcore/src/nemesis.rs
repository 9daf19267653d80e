//! The nemesis: a seeded random fault timeline, drawn before the run from its own stream.
//!
//! `[nemesis]` names the fault `kinds`, the gap between faults (`interval`) and how long
//! each lasts (`heal_after`). The schedule is drawn up front as plain [`Fault`] values, so
//! it is printed with the report, replayed exactly by `sim run --seed N`, and minimized by
//! `sim shrink` like any scripted timeline. Its random stream is its own sub-stream of the
//! run seed, so changing the nemesis never shifts the workload's or the network's draws.
//!
//! What the configuration must survive is written down here and enforced: at most
//! `max_down` servers (default: a minority, `(n - 1) / 2`) crashed, paused, shut down,
//! isolated or on the minority side of a partition at once; one network fault (partition,
//! isolation, clog) at a time; clock drift up to the election lease's own claim
//! ([`MAX_DRIFT`], ±11.1 %: the lease holds while a follower's clock runs at most
//! `1 / LEASE_FRACTION` = 1.25 times as fast as the leader's, and two nodes drifting
//! `+d` and `-d` have the rate ratio `(1 + d) / (1 - d)`, which stays below 1.25 for
//! `d < 1/9`), so fuzzing tests the claim rather than a comfortable fraction of it; a
//! `disk` fault only on a crashed node; one `slow` server at a time (factor 2 to 20: the
//! degraded node a cascading failure starts from, not a cluster that is slow all over).
//! Every fault is undone
//! by `until` (default: the workload's `stop`, else 3/4 of the run): crashed nodes
//! restarted, paused ones resumed, partitions and clogs healed, skew cleared, slow
//! servers back to speed, loss and
//! latency back to the scenario's own `[network]` (its baseline, not fixed values), and
//! nothing more is injected, so the end of the run shows whether the system recovers.
//!
//! `swarm = true` (swarm testing, as in Groce et al. and TigerBeetle's VOPR): each seed
//! enables a random non-empty subset of the kinds with random weights and a random pace,
//! because a smaller fault mix often finds bugs the full mix masks.

use crate::scenario::{Action, DiskMode, Dur, Fault, Nemesis, NemesisKind, Offset, Scenario};
use crate::workload::stream;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::time::Duration;
use toml::Spanned;

/// The largest clock drift the nemesis gives a node, from the election's lease claim:
/// `(1 + d) / (1 - d) = 1 / LEASE_FRACTION`, i.e. `d = (1 - f) / (1 + f)` (1/9 for 0.8).
/// Drift is drawn from the open range `(-d, d)`, so any two nodes' rates differ by a
/// factor below 1.25.
pub const MAX_DRIFT: f64 = (1.0 - nodes::election::config::LEASE_FRACTION)
    / (1.0 + nodes::election::config::LEASE_FRACTION);

/// The nemesis's faults for this scenario and seed (empty without `[nemesis]`).
pub fn schedule(scenario: &Scenario, seed: u64) -> Vec<Fault> {
    let Some(nemesis) = &scenario.nemesis else {
        return Vec::new();
    };
    let mut rng = stream(seed, "nemesis");
    let servers: Vec<String> = (1..=scenario.server_count())
        .map(|i| format!("n{i}"))
        .collect();
    let max_down = nemesis
        .max_down
        .as_ref()
        .map_or((servers.len().saturating_sub(1)) / 2, |m| *m.get_ref());
    let until = until(scenario, nemesis);
    let baseline = Baseline::of(scenario);
    let (kinds, pace) = enabled_kinds(nemesis, &mut rng);
    let mut state = State::default();
    let mut faults = Vec::new();
    let mut t = draw(&mut rng, nemesis.interval.get_ref()).mul_f64(pace);
    while t < until && !kinds.is_empty() {
        let kind = *pick_weighted(&kinds, &mut rng);
        let lasts = draw(&mut rng, nemesis.heal_after.get_ref());
        let heal_at = (t + lasts).min(until);
        state.expire(t);
        inject(
            kind,
            t,
            heal_at,
            &servers,
            max_down,
            &baseline,
            &mut state,
            &mut rng,
            &mut faults,
        );
        t += draw(&mut rng, nemesis.interval.get_ref()).mul_f64(pace);
    }
    if !faults.is_empty() {
        // Every fault above heals itself by `until`; this is the belt to those braces.
        faults.push(Fault::new(until, Action::Heal));
        faults.push(baseline.loss_at(until));
    }
    faults.sort_by_key(|f| f.at);
    faults
}

/// When the nemesis stops and heals everything.
pub fn until(scenario: &Scenario, nemesis: &Nemesis) -> Duration {
    let duration = scenario.duration.0;
    let default = scenario
        .workload
        .as_ref()
        .and_then(|w| w.stop.as_ref().map(|s| s.get_ref().0))
        .unwrap_or(duration.mul_f64(0.75));
    nemesis
        .until
        .as_ref()
        .map_or(default, |u| u.get_ref().0)
        .min(duration)
}

fn draw(rng: &mut ChaCha8Rng, range: &[Dur; 2]) -> Duration {
    let (low, high) = (range[0].0, range[1].0);
    if high <= low {
        return low;
    }
    Duration::from_nanos(rng.gen_range(low.as_nanos() as u64..=high.as_nanos() as u64))
}

/// The kinds in play with their weights, and a pace factor (swarm: random; else all, 1).
fn enabled_kinds(nemesis: &Nemesis, rng: &mut ChaCha8Rng) -> (Vec<(NemesisKind, u32)>, f64) {
    let all: Vec<NemesisKind> = nemesis
        .kinds
        .iter()
        .map(|k| *k.get_ref())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !nemesis.swarm {
        return (all.into_iter().map(|k| (k, 1)).collect(), 1.0);
    }
    let mut chosen: Vec<(NemesisKind, u32)> = Vec::new();
    for &kind in &all {
        if rng.gen_bool(0.5) {
            chosen.push((kind, rng.gen_range(1..=4)));
        }
    }
    if chosen.is_empty() {
        if let Some(&k) = all.choose(rng) {
            chosen.push((k, 1));
        }
    }
    let pace = [0.5, 1.0, 2.0][rng.gen_range(0..3)];
    (chosen, pace)
}

fn pick_weighted<'a>(kinds: &'a [(NemesisKind, u32)], rng: &mut ChaCha8Rng) -> &'a NemesisKind {
    let total: u32 = kinds.iter().map(|(_, w)| w).sum();
    let mut ticket = rng.gen_range(0..total.max(1));
    for (kind, weight) in kinds {
        if ticket < *weight {
            return kind;
        }
        ticket -= weight;
    }
    &kinds[0].0
}

/// What is broken right now, to respect the bounds.
#[derive(Default)]
struct State {
    /// Server -> time it is whole again.
    down: Vec<(String, Duration)>,
    /// When the current network fault heals.
    network_until: Option<Duration>,
    /// When the current loss/latency change is undone.
    links_until: Option<Duration>,
    /// When the slow server is back to speed.
    slow_until: Option<Duration>,
}

impl State {
    fn expire(&mut self, now: Duration) {
        self.down.retain(|(_, until)| *until > now);
        if self.network_until.is_some_and(|u| u <= now) {
            self.network_until = None;
        }
        if self.links_until.is_some_and(|u| u <= now) {
            self.links_until = None;
        }
        if self.slow_until.is_some_and(|u| u <= now) {
            self.slow_until = None;
        }
    }

    fn is_down(&self, server: &str) -> bool {
        self.down.iter().any(|(s, _)| s == server)
    }

    fn up<'a>(&self, servers: &'a [String]) -> Vec<&'a String> {
        servers.iter().filter(|s| !self.is_down(s)).collect()
    }
}

#[allow(clippy::too_many_arguments)]
fn inject(
    kind: NemesisKind,
    at: Duration,
    heal_at: Duration,
    servers: &[String],
    max_down: usize,
    baseline: &Baseline,
    state: &mut State,
    rng: &mut ChaCha8Rng,
    faults: &mut Vec<Fault>,
) {
    let room = max_down.saturating_sub(state.down.len());
    let up = state.up(servers);
    let pick = |rng: &mut ChaCha8Rng| up.choose(rng).map(|s| s.to_string());
    match kind {
        NemesisKind::Crash | NemesisKind::Pause | NemesisKind::Shutdown | NemesisKind::Disk => {
            if room == 0 {
                return;
            }
            let Some(node) = pick(rng) else { return };
            let (down, up_again) = match kind {
                NemesisKind::Pause => (Action::Pause, Action::Resume),
                NemesisKind::Shutdown => (Action::Shutdown, Action::Restart),
                _ => (Action::Crash, Action::Restart),
            };
            faults.push(Fault::new(at, down).node(&node));
            if kind == NemesisKind::Disk {
                let mut disk = Fault::new(at, Action::Disk).node(&node);
                let mode = if rng.gen_bool(0.5) {
                    DiskMode::Tear
                } else {
                    DiskMode::Corrupt
                };
                disk.mode = Some(Spanned::new(0..0, mode));
                faults.push(disk);
            }
            faults.push(Fault::new(heal_at, up_again).node(&node));
            state.down.push((node, heal_at));
        }
        NemesisKind::Partition | NemesisKind::Isolate => {
            if room == 0 || state.network_until.is_some() {
                return;
            }
            let mut shuffled: Vec<String> = up.iter().map(|s| s.to_string()).collect();
            shuffled.shuffle(rng);
            let size = if kind == NemesisKind::Isolate {
                1
            } else {
                rng.gen_range(1..=room)
            };
            let minority: Vec<String> = shuffled.into_iter().take(size).collect();
            if minority.is_empty() {
                return;
            }
            let fault = if kind == NemesisKind::Isolate {
                Fault::new(at, Action::Isolate).node(&minority[0])
            } else {
                let rest: Vec<String> = servers
                    .iter()
                    .filter(|s| !minority.contains(s))
                    .cloned()
                    .collect();
                Fault::new(at, Action::Partition).groups(vec![minority.clone(), rest])
            };
            faults.push(fault);
            faults.push(Fault::new(heal_at, Action::Heal));
            for node in minority {
                state.down.push((node, heal_at));
            }
            state.network_until = Some(heal_at);
        }
        NemesisKind::Clog => {
            if state.network_until.is_some() || servers.len() < 2 {
                return;
            }
            let mut pair: Vec<&String> = servers.iter().collect();
            pair.shuffle(rng);
            faults.push(Fault::new(at, Action::Clog).link(pair[0], pair[1]));
            faults.push(Fault::new(heal_at, Action::Unclog).link(pair[0], pair[1]));
            state.network_until = Some(heal_at);
        }
        NemesisKind::Slow => {
            if state.slow_until.is_some() {
                return;
            }
            let Some(node) = servers.choose(rng) else {
                return;
            };
            let factor = [2.0, 5.0, 10.0, 20.0][rng.gen_range(0..4)];
            faults.push(slow(at, node, factor));
            faults.push(slow(heal_at, node, 1.0));
            state.slow_until = Some(heal_at);
        }
        NemesisKind::Skew => {
            let Some(node) = servers.choose(rng) else {
                return;
            };
            let mut skew = Fault::new(at, Action::Skew).node(node);
            skew.offset = Some(Spanned::new(0..0, Offset(rng.gen_range(-10_000..=10_000))));
            skew.drift = Some(Spanned::new(0..0, rng.gen_range(-MAX_DRIFT..MAX_DRIFT)));
            faults.push(skew);
            faults.push(clear_skew(heal_at, node));
        }
        NemesisKind::Loss | NemesisKind::Latency => {
            if state.links_until.is_some() {
                return;
            }
            if kind == NemesisKind::Loss {
                let mut loss = Fault::new(at, Action::Loss);
                loss.rate = Some(Spanned::new(
                    0..0,
                    [0.05, 0.1, 0.2, 0.3][rng.gen_range(0..4)],
                ));
                faults.push(loss);
                faults.push(baseline.loss_at(heal_at));
            } else {
                let high = Duration::from_millis(rng.gen_range(20..=200));
                let mut latency = Fault::new(at, Action::Latency);
                latency.range = Some(Spanned::new(
                    0..0,
                    [Dur(Duration::from_millis(1)), Dur(high)],
                ));
                faults.push(latency);
                faults.push(baseline.latency_at(heal_at));
            }
            state.links_until = Some(heal_at);
        }
    }
}

fn slow(at: Duration, node: &str, factor: f64) -> Fault {
    let mut slow = Fault::new(at, Action::Slow).node(node);
    slow.factor = Some(Spanned::new(0..0, factor));
    slow
}

fn clear_skew(at: Duration, node: &str) -> Fault {
    let mut skew = Fault::new(at, Action::Skew).node(node);
    skew.offset = Some(Spanned::new(0..0, Offset(0)));
    skew.drift = Some(Spanned::new(0..0, 0.0));
    skew
}

/// The scenario's own `[network]`: what a loss or latency fault heals back to.
struct Baseline {
    loss: f64,
    latency: [Dur; 2],
}

impl Baseline {
    fn of(scenario: &Scenario) -> Baseline {
        Baseline {
            loss: scenario.network.loss.as_ref().map_or(0.0, |l| *l.get_ref()),
            // madsim's default when the scenario gives none.
            latency: scenario.network.latency.as_ref().map_or(
                [
                    Dur(Duration::from_millis(1)),
                    Dur(Duration::from_millis(10)),
                ],
                |l| *l.get_ref(),
            ),
        }
    }

    fn loss_at(&self, at: Duration) -> Fault {
        let mut loss = Fault::new(at, Action::Loss);
        loss.rate = Some(Spanned::new(0..0, self.loss));
        loss
    }

    fn latency_at(&self, at: Duration) -> Fault {
        let mut latency = Fault::new(at, Action::Latency);
        latency.range = Some(Spanned::new(0..0, self.latency));
        latency
    }
}

/// Every fault of the run in time order: the scripted ones, then the nemesis's draws for
/// this seed (scripted first among equal times). Each carries its identity (`id`): a
/// scripted fault its own or its position in the file, the nemesis's `k`-th fault
/// `scripted + k` (1-based), so [`fault_stream`] gives it the same draws whatever else
/// is in the timeline — which is what lets `sim shrink` drop faults without changing
/// the ones it keeps.
pub fn fault_timeline(scenario: &Scenario, seed: u64) -> Vec<Fault> {
    let scripted = scenario.faults.iter().map(|f| f.get_ref().clone());
    let drawn = schedule(scenario, seed);
    let mut faults: Vec<Fault> = scripted
        .chain(drawn)
        .enumerate()
        .map(|(index, mut fault)| {
            if fault.id.is_none() {
                fault.id = Some(toml::Spanned::new(0..0, index as u64 + 1));
            }
            fault
        })
        .collect();
    faults.sort_by_key(|f| f.at);
    faults
}

/// The random stream of one fault's own draws: from the seed and the fault's `id` only.
pub fn fault_stream(seed: u64, fault: &Fault) -> ChaCha8Rng {
    let id = fault.id.as_ref().map_or(0, |id| *id.get_ref());
    stream(seed, &format!("fault/{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heals_restore_the_scenarios_own_network() {
        let scenario = crate::scenario::parse(
            "net.toml",
            r#"
name = "net"
system = "election"
nodes = 5
duration = "60s"

[network]
latency = ["5ms", "50ms"]
loss = 0.02

[nemesis]
kinds = ["loss", "latency"]
interval = ["1s", "3s"]

[[check]]
kind = "election_safety"
"#,
        )
        .expect("parses");
        let ms = |n| Dur(Duration::from_millis(n));
        let (mut losses, mut latencies) = (0, 0);
        for seed in 1..20 {
            for f in schedule(&scenario, seed) {
                let rate = f.rate.as_ref().map(|r| *r.get_ref());
                let range = f.range.as_ref().map(|r| *r.get_ref());
                match f.action.get_ref() {
                    Action::Loss if rate == Some(0.02) => losses += 1,
                    Action::Loss => assert!(
                        [0.05, 0.1, 0.2, 0.3].contains(&rate.unwrap_or(0.0)),
                        "seed {seed}: loss {rate:?} is neither a nemesis draw nor the baseline"
                    ),
                    Action::Latency if range == Some([ms(5), ms(50)]) => latencies += 1,
                    Action::Latency => assert!(
                        range.is_some_and(|[low, high]| low == ms(1) && high >= ms(20)),
                        "seed {seed}: latency {range:?} is neither a nemesis draw nor the baseline"
                    ),
                    _ => {}
                }
            }
        }
        assert!(
            losses > 0 && latencies > 0,
            "{losses} loss heals, {latencies} latency heals"
        );
    }

    #[test]
    fn drift_reaches_the_lease_claim_and_stays_within_it() {
        let scenario = crate::scenario::parse(
            "skew.toml",
            "name = \"skew\"\nsystem = \"election\"\nnodes = 5\nduration = \"60s\"\n\
             [nemesis]\nkinds = [\"skew\"]\n[[check]]\nkind = \"election_safety\"\n",
        )
        .expect("parses");
        let drifts: Vec<f64> = (1..30)
            .flat_map(|seed| schedule(&scenario, seed))
            .filter_map(|f| f.drift.map(|d| d.into_inner()))
            .collect();
        let widest = drifts.iter().fold(0.0f64, |m, d| m.max(d.abs()));
        assert!(widest < MAX_DRIFT, "drift {widest} beyond the claim");
        // Far past the old ±2 %: close to the bound, on both sides.
        assert!(
            widest > 0.1,
            "widest drift {widest}: fuzzing does not reach the claim"
        );
        assert!(drifts.iter().any(|d| *d < -0.08) && drifts.iter().any(|d| *d > 0.08));
        // Two nodes at the extremes still run within the lease's 1.25 rate ratio.
        let ratio = (1.0 + MAX_DRIFT) / (1.0 - MAX_DRIFT);
        let claim = 1.0 / nodes::election::config::LEASE_FRACTION;
        assert!((ratio - claim).abs() < 1e-9, "{ratio} vs {claim}");
    }

    #[test]
    fn one_server_is_slow_at_a_time_and_every_slow_server_is_back_to_speed_by_until() {
        let scenario = crate::scenario::parse(
            "slow.toml",
            "name = \"slow\"\nsystem = \"kv\"\nnodes = 3\nduration = \"60s\"\n\
             [nemesis]\nkinds = [\"slow\"]\ninterval = [\"1s\", \"3s\"]\nuntil = \"40s\"\n\
             [[check]]\nkind = \"converged\"\n",
        )
        .expect("parses");
        let mut slowed = 0;
        for seed in 1..20 {
            let mut slow_now: Option<String> = None;
            for f in schedule(&scenario, seed)
                .iter()
                .filter(|f| *f.action.get_ref() == Action::Slow)
            {
                let node = f.node.as_ref().map(|n| n.get_ref().clone());
                let factor = f.factor.as_ref().map_or(0.0, |x| *x.get_ref());
                assert!(f.at.0 <= Duration::from_secs(40), "seed {seed}: {f:?}");
                if factor > 1.0 {
                    assert!(slow_now.is_none(), "seed {seed}: two slow servers at once");
                    assert!([2.0, 5.0, 10.0, 20.0].contains(&factor));
                    slow_now = node;
                    slowed += 1;
                } else {
                    assert_eq!(slow_now.take(), node, "seed {seed}: reset of another node");
                }
            }
            assert!(slow_now.is_none(), "seed {seed}: still slow after until");
        }
        assert!(slowed > 20, "{slowed} slow faults over 19 seeds");
    }
}
