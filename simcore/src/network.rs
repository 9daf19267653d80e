//! The network model: which directed links are cut, and each link's loss rate and
//! latency range, as the faults left them.
//!
//! One model, three users: the simulated cluster applies faults to it and hands madsim
//! the links it changed, the checkers replay the recorded faults into it
//! (`check::view`), and the real fault proxy decides each message's fate from it.
//! `partition` and `isolate` cut both directions, `clog` one; `heal` removes every cut
//! (loss and latency stay). A rate or range for every link applies where a link has none
//! of its own. Nodes are any ordered key: names, madsim ids or server indices.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A directed link, `(from, to)`.
pub type Link<N> = (N, N);

/// Cut links, loss rates and latency ranges.
#[derive(Clone, Debug)]
pub struct Network<N> {
    /// Links whose messages are dropped.
    cut: BTreeSet<Link<N>>,
    /// Drop probability of every link without its own.
    loss: f64,
    /// Per-link drop probabilities.
    link_loss: BTreeMap<Link<N>, f64>,
    /// Delay range of every link without its own.
    latency: Option<[Duration; 2]>,
    /// Per-link delay ranges.
    link_latency: BTreeMap<Link<N>, [Duration; 2]>,
}

impl<N> Default for Network<N> {
    fn default() -> Self {
        Network {
            cut: BTreeSet::new(),
            loss: 0.0,
            link_loss: BTreeMap::new(),
            latency: None,
            link_latency: BTreeMap::new(),
        }
    }
}

impl<N: Ord + Clone> Network<N> {
    /// Cuts both directions between every two nodes of different groups; returns the
    /// links it cut (in that order), cut already or not.
    pub fn partition(&mut self, groups: &[Vec<N>]) -> Vec<Link<N>> {
        let mut links = Vec::new();
        for (i, a_group) in groups.iter().enumerate() {
            for b_group in &groups[i + 1..] {
                for a in a_group {
                    for b in b_group {
                        links.push((a.clone(), b.clone()));
                        links.push((b.clone(), a.clone()));
                    }
                }
            }
        }
        self.cut.extend(links.iter().cloned());
        links
    }

    /// Cuts `node` from every other of `nodes`, both ways; returns the links it cut.
    pub fn isolate(&mut self, node: &N, nodes: &[N]) -> Vec<Link<N>> {
        let mut links = Vec::new();
        for other in nodes.iter().filter(|&other| other != node) {
            links.push((node.clone(), other.clone()));
            links.push((other.clone(), node.clone()));
        }
        self.cut.extend(links.iter().cloned());
        links
    }

    /// Cuts the one direction `from -> to`.
    pub fn clog(&mut self, from: N, to: N) {
        self.cut.insert((from, to));
    }

    /// Restores the one direction `from -> to`.
    pub fn unclog(&mut self, from: N, to: N) {
        self.cut.remove(&(from, to));
    }

    /// Removes every cut; returns the links that were cut.
    pub fn heal(&mut self) -> BTreeSet<Link<N>> {
        std::mem::take(&mut self.cut)
    }

    /// Sets the loss rate of one link, or of every link without its own (`None`).
    pub fn set_loss(&mut self, link: Option<Link<N>>, rate: f64) {
        match link {
            Some(link) if rate > 0.0 => {
                self.link_loss.insert(link, rate);
            }
            Some(link) => {
                self.link_loss.remove(&link);
            }
            None => self.loss = rate,
        }
    }

    /// Sets the delay range of one link, or of every link without its own (`None`).
    pub fn set_latency(&mut self, link: Option<Link<N>>, range: [Duration; 2]) {
        match link {
            Some(link) => {
                self.link_latency.insert(link, range);
            }
            None => self.latency = Some(range),
        }
    }

    /// True when messages `from -> to` are dropped by a cut.
    pub fn is_cut(&self, from: &N, to: &N) -> bool {
        self.cut.contains(&(from.clone(), to.clone()))
    }

    /// True when both directions between `a` and `b` are uncut.
    pub fn connected(&self, a: &N, b: &N) -> bool {
        !self.is_cut(a, b) && !self.is_cut(b, a)
    }

    /// The drop probability of `from -> to`.
    pub fn loss(&self, from: &N, to: &N) -> f64 {
        let link = (from.clone(), to.clone());
        self.link_loss.get(&link).copied().unwrap_or(self.loss)
    }

    /// The links with a loss rate of their own, and the rates.
    pub fn lossy_links(&self) -> impl Iterator<Item = (&Link<N>, f64)> {
        self.link_loss.iter().map(|(link, &rate)| (link, rate))
    }

    /// The delay range of `from -> to`, if any.
    pub fn latency(&self, from: &N, to: &N) -> Option<[Duration; 2]> {
        let link = (from.clone(), to.clone());
        self.link_latency.get(&link).copied().or(self.latency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_cuts_both_ways_between_groups_only() {
        let mut net = Network::default();
        net.partition(&[vec![1, 2], vec![3]]);
        assert!(net.is_cut(&1, &3) && net.is_cut(&3, &1) && net.is_cut(&2, &3));
        assert!(!net.is_cut(&1, &2) && !net.is_cut(&2, &1));
        assert!(net.connected(&1, &2) && !net.connected(&2, &3));
    }

    #[test]
    fn isolate_cuts_one_node_from_all_others_and_heal_restores_every_cut() {
        let mut net = Network::default();
        net.isolate(&"n2", &["n1", "n2", "n3", "c1"]);
        assert!(net.is_cut(&"n2", &"c1") && net.is_cut(&"n1", &"n2"));
        assert!(!net.is_cut(&"n1", &"n3"));
        net.clog("n1", "n3");
        let healed = net.heal();
        assert_eq!(healed.len(), 7, "{healed:?}");
        assert!(net.connected(&"n1", &"n2") && net.connected(&"n1", &"n3"));
    }

    #[test]
    fn clog_is_one_way_and_unclog_restores_it() {
        let mut net = Network::default();
        net.clog(2, 1);
        assert!(net.is_cut(&2, &1) && !net.is_cut(&1, &2));
        assert!(!net.connected(&1, &2));
        net.unclog(2, 1);
        assert!(net.connected(&1, &2));
    }

    #[test]
    fn a_links_own_loss_and_latency_win_over_every_links() {
        let mut net = Network::default();
        let range = [Duration::from_millis(10), Duration::from_millis(20)];
        net.set_loss(None, 0.1);
        net.set_loss(Some((1, 2)), 0.5);
        net.set_latency(Some((2, 1)), range);
        assert_eq!(net.loss(&1, &2), 0.5);
        assert_eq!(net.loss(&2, &1), 0.1);
        assert_eq!(net.latency(&2, &1), Some(range));
        assert_eq!(net.latency(&1, &2), None);
        assert_eq!(net.lossy_links().count(), 1);
        net.set_loss(Some((1, 2)), 0.0);
        assert_eq!(net.loss(&1, &2), 0.1);
        assert_eq!(net.lossy_links().count(), 0);
    }
}
