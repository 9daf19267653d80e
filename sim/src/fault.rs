//! Faults are values: a scenario's `[[fault]]` entries (and, later, the nemesis's draws)
//! are applied here, at their simulated time, through the verbs of [`crate::cluster`].
//!
//! Selectors are resolved at the moment of application: `leader` is the live server that
//! most recently became leader according to the recorded history, `random` a seeded choice
//! among live servers. A fault that cannot apply (no live leader, node already down) is
//! recorded as skipped with the reason, so the report shows it.

use crate::cluster::{Cluster, Status};
use crate::history::{AppliedFault, Entry};
use crate::scenario::{Action, DiskMode, Fault};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use simcore::selectors::link;

/// Applies one fault and returns what was done, for the history.
pub fn apply(
    cluster: &mut Cluster,
    fault: &Fault,
    history: &[Entry],
    rng: &mut ChaCha8Rng,
) -> AppliedFault {
    let action = *fault.action.get_ref();
    let mut applied = AppliedFault::new(action);
    let target = match fault.node.as_ref().map(|n| n.get_ref().as_str()) {
        None => None,
        Some(selector) => match resolve(cluster, selector, history, rng) {
            Ok(name) => Some(name),
            Err(why) => {
                applied.node = Some(selector.to_string());
                applied.skipped = Some(why);
                return applied;
            }
        },
    };
    applied.node = target.clone();
    let node = target.as_deref().unwrap_or_default();
    let result: Result<Option<String>, String> = match action {
        Action::Crash => cluster
            .crash(node)
            .map(|lost| (lost > 0).then(|| format!("lost {lost} unsynced bytes"))),
        Action::Restart => cluster.restart(node).map(|_| None),
        Action::Pause => cluster.pause(node).map(|_| None),
        Action::Resume => cluster.resume(node).map(|_| None),
        Action::Shutdown => cluster.shutdown(node).map(|_| None),
        Action::Partition => {
            let groups = simcore::selectors::groups(fault);
            applied.groups = groups.clone();
            cluster.partition(&groups).map(|_| None)
        }
        Action::Heal => {
            cluster.heal();
            Ok(None)
        }
        Action::Isolate => cluster.isolate(node).map(|_| None),
        Action::Clog | Action::Unclog => {
            let (from, to) = link(fault);
            applied.from = Some(from.clone());
            applied.to = Some(to.clone());
            if action == Action::Clog {
                cluster.clog(&from, &to).map(|_| None)
            } else {
                cluster.unclog(&from, &to).map(|_| None)
            }
        }
        Action::Skew => {
            let offset = fault.offset.as_ref().map(|o| o.get_ref().0);
            let drift = fault.drift.as_ref().map(|d| *d.get_ref());
            applied.offset_ms = offset;
            applied.drift = drift;
            cluster.skew(node, offset, drift).map(|_| None)
        }
        Action::Loss => {
            let rate = fault.rate.as_ref().map_or(0.0, |r| *r.get_ref());
            applied.rate = Some(rate);
            if fault.from.is_some() {
                let (from, to) = link(fault);
                applied.from = Some(from.clone());
                applied.to = Some(to.clone());
                cluster
                    .set_link_loss(&from, &to, rate, rng.gen())
                    .map(|_| None)
            } else {
                cluster.set_loss(rate);
                Ok(None)
            }
        }
        Action::Latency => {
            let [low, high] = fault
                .range
                .as_ref()
                .map(|r| *r.get_ref())
                .unwrap_or_default();
            applied.range_ms = Some([low.0.as_secs_f64() * 1e3, high.0.as_secs_f64() * 1e3]);
            cluster.set_latency(low.0, high.0);
            Ok(None)
        }
        Action::Disk => {
            let mode = fault
                .mode
                .as_ref()
                .map(|m| *m.get_ref())
                .unwrap_or(DiskMode::Tear);
            applied.mode = Some(format!("{mode:?}").to_lowercase());
            cluster.disk(node).map(|disk| {
                Some(match mode {
                    DiskMode::Tear => disk.tear(rng),
                    DiskMode::Corrupt => disk.corrupt(rng),
                })
            })
        }
        Action::Slow => {
            let factor = fault.factor.as_ref().map_or(1.0, |f| *f.get_ref());
            applied.factor = Some(factor);
            cluster.slow(node, factor).map(|_| None)
        }
    };
    match result {
        Ok(effect) => applied.effect = effect,
        Err(why) => applied.skipped = Some(why),
    }
    applied
}

/// Turns a selector into a node name.
pub fn resolve(
    cluster: &Cluster,
    selector: &str,
    history: &[Entry],
    rng: &mut ChaCha8Rng,
) -> Result<String, String> {
    match selector {
        "leader" => current_leader(cluster, history).ok_or_else(|| "no live leader".to_string()),
        "random" => {
            let live = cluster.live_servers();
            if live.is_empty() {
                return Err("no live server".into());
            }
            Ok(live[rng.gen_range(0..live.len())].clone())
        }
        name => Ok(name.to_string()),
    }
}

/// The live server that most recently became leader and still says it is.
pub fn current_leader(cluster: &Cluster, history: &[Entry]) -> Option<String> {
    simcore::selectors::latest_leader(history, |name| {
        cluster.get(name).is_some_and(|n| n.status == Status::Up)
    })
}
