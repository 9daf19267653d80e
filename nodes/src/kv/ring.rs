//! Consistent hashing with virtual nodes: which servers hold a key.
//!
//! Each member is placed on a 64-bit ring at `virtual_nodes` points (SHA-256 of
//! `"{member}#{i}"`); a key's replicas are the first `replication_factor` distinct members
//! found walking clockwise from the key's own hash. Adding or removing a member moves only
//! the keys next to its points, which is the point of the scheme (seed 002).

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The ring for one membership view: its points sorted, each naming a member by index
/// (a sorted array is cheaper to build and to walk than a tree; every KV request reads
/// the ring, and every membership change rebuilds it).
#[derive(Debug, Default)]
pub struct Ring {
    /// (point, index into `names`), sorted by point, one entry per point.
    points: Vec<(u64, u32)>,
    names: Vec<Arc<str>>,
    /// Replicas already found: key -> (count asked, indices into `names`). A pure
    /// function of the ring, asked for the same few keys over and over (every request,
    /// every anti-entropy page, for each key in it); emptied when it holds
    /// [`MEMO_KEYS`] keys, so a store of many keys costs no more than before.
    memo: Mutex<BTreeMap<String, (usize, Vec<u32>)>>,
}

/// Most keys whose replicas a ring remembers.
const MEMO_KEYS: usize = 4096;

impl Clone for Ring {
    fn clone(&self) -> Self {
        Ring {
            points: self.points.clone(),
            names: self.names.clone(),
            memo: Mutex::default(),
        }
    }
}

/// A stable 64-bit hash (the first 8 bytes of SHA-256).
pub fn hash(text: &str) -> u64 {
    let digest = Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

/// The points of `member`: a pure function of its name, memoized process-wide, because
/// every server of a large simulated cluster rebuilds its ring from the same names (1,000
/// servers x 256 points is 256,000 hashes per rebuild otherwise).
/// The points are kept sorted: a ring's build then merges sorted runs (one per member)
/// instead of sorting them all, which a membership change under faults did every time.
fn points_of(member: &str, virtual_nodes: u32) -> Arc<Vec<u64>> {
    type Points = BTreeMap<u32, BTreeMap<String, Arc<Vec<u64>>>>;
    static POINTS: Mutex<Points> = Mutex::new(BTreeMap::new());
    let known = POINTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&virtual_nodes)
        .and_then(|members| members.get(member).cloned());
    if let Some(points) = known {
        return points;
    }
    let mut points: Vec<u64> = (0..virtual_nodes)
        .map(|i| hash(&format!("{member}#{i}")))
        .collect();
    points.sort_unstable();
    let points = Arc::new(points);
    POINTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(virtual_nodes)
        .or_default()
        .insert(member.to_string(), points.clone());
    points
}

impl Ring {
    /// Places every member at `virtual_nodes` points. Should two members hash to the
    /// same point, the one listed later holds it.
    pub fn new<'a>(members: impl IntoIterator<Item = &'a str>, virtual_nodes: u32) -> Ring {
        let mut ring = Ring::default();
        for member in members {
            let index = ring.names.len() as u32;
            ring.names.push(member.into());
            let points = points_of(member, virtual_nodes.max(1));
            ring.points
                .extend(points.iter().map(|&point| (point, index)));
        }
        // Stable: equal points keep their insertion order, and the last of them wins. (Each
        // member's points are one sorted run, which the stable sort merges.)
        ring.points.sort_by_key(|&(point, _)| point);
        let points = &mut ring.points;
        let mut kept = 0;
        for at in 0..points.len() {
            if kept > 0 && points[kept - 1].0 == points[at].0 {
                points[kept - 1] = points[at];
            } else {
                points[kept] = points[at];
                kept += 1;
            }
        }
        points.truncate(kept);
        ring
    }

    /// The first `count` distinct members clockwise from the key's hash.
    pub fn replicas(&self, key: &str, count: usize) -> Vec<String> {
        self.replicas_of(key, count)
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// [`Ring::replicas`], borrowed from the ring.
    pub fn replicas_of(&self, key: &str, count: usize) -> Vec<&str> {
        let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((asked, found)) = memo.get(key) {
            if *asked == count {
                return found.iter().map(|&i| &*self.names[i as usize]).collect();
            }
        }
        let found = self.walk(key, count);
        if memo.len() >= MEMO_KEYS {
            memo.clear();
        }
        let replicas = found.iter().map(|&i| &*self.names[i as usize]).collect();
        memo.insert(key.to_string(), (count, found));
        replicas
    }

    /// The walk of [`Ring::replicas_of`]: indices into `names`.
    fn walk(&self, key: &str, count: usize) -> Vec<u32> {
        let want = count.min(self.names.len());
        let mut found: Vec<u32> = Vec::with_capacity(want);
        let at = hash(key);
        let start = self.points.partition_point(|&(point, _)| point < at);
        let (behind, ahead) = self.points.split_at(start);
        for &(_, member) in ahead.iter().chain(behind) {
            if found.len() == want {
                break;
            }
            let name = &self.names[member as usize];
            if !found.iter().any(|&f| self.names[f as usize] == *name) {
                found.push(member);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_distinct_and_stable() {
        let ring = Ring::new(["node-1", "node-2", "node-3", "node-4"], 150);
        let replicas = ring.replicas("user:1", 3);
        assert_eq!(replicas.len(), 3);
        let mut unique = replicas.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 3);
        assert_eq!(ring.replicas("user:1", 3), replicas);
        assert_eq!(
            ring.replicas("user:1", 9).len(),
            4,
            "never more than the members"
        );
    }

    #[test]
    fn replicas_are_the_clockwise_walk_of_the_points() {
        // The walk done the plain way: every point in a tree, from the key's hash round.
        let members = ["n1", "n2", "n3", "n4", "n5"];
        let ring = Ring::new(members, 150);
        let mut tree: BTreeMap<u64, &str> = BTreeMap::new();
        for member in members {
            for i in 0..150 {
                tree.insert(hash(&format!("{member}#{i}")), member);
            }
        }
        for k in 0..500 {
            let key = format!("key-{k}");
            let start = hash(&key);
            let mut walk: Vec<&str> = Vec::new();
            for (_, member) in tree.range(start..).chain(tree.range(..start)) {
                if walk.len() < 3 && !walk.contains(member) {
                    walk.push(member);
                }
            }
            assert_eq!(ring.replicas_of(&key, 3), walk, "key {key}");
        }
        assert!(Ring::new([], 150).replicas("k", 3).is_empty());
        // Asked again (from the memo), or for another count, the walk is the same.
        for k in 0..500 {
            let key = format!("key-{k}");
            let three = ring.replicas_of(&key, 3);
            assert_eq!(ring.replicas_of(&key, 3), three, "key {key}");
            assert_eq!(ring.replicas_of(&key, 2), three[..2], "key {key}");
            assert_eq!(ring.clone().replicas_of(&key, 3), three, "key {key}");
        }
    }

    #[test]
    fn removing_a_member_moves_only_its_keys() {
        let all = Ring::new(["a", "b", "c", "d", "e"], 150);
        let fewer = Ring::new(["a", "b", "c", "d"], 150);
        let keys: Vec<String> = (0..1000).map(|i| format!("key-{i}")).collect();
        let moved = keys
            .iter()
            .filter(|k| {
                let before = &all.replicas(k, 1)[0];
                before != "e" && *before != fewer.replicas(k, 1)[0]
            })
            .count();
        assert_eq!(moved, 0, "keys not owned by e stay put");
        let owned_by_e = keys.iter().filter(|k| all.replicas(k, 1)[0] == "e").count();
        assert!(
            (100..=300).contains(&owned_by_e),
            "virtual nodes spread load: {owned_by_e}/1000"
        );
    }
}
