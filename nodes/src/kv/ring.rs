//! Consistent hashing with virtual nodes: which servers hold a key.
//!
//! Each member is placed on a 64-bit ring at `virtual_nodes` points (SHA-256 of
//! `"{member}#{i}"`); a key's replicas are the first `replication_factor` distinct members
//! found walking clockwise from the key's own hash. Adding or removing a member moves only
//! the keys next to its points, which is the point of the scheme (seed 002).

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The ring for one membership view.
#[derive(Clone, Debug, Default)]
pub struct Ring {
    points: BTreeMap<u64, Arc<str>>,
    members: usize,
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
fn points_of(member: &str, virtual_nodes: u32) -> Arc<Vec<u64>> {
    type Points = BTreeMap<(String, u32), Arc<Vec<u64>>>;
    static POINTS: Mutex<Points> = Mutex::new(BTreeMap::new());
    let key = (member.to_string(), virtual_nodes);
    if let Some(points) = POINTS.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return points.clone();
    }
    let points: Arc<Vec<u64>> = Arc::new(
        (0..virtual_nodes)
            .map(|i| hash(&format!("{member}#{i}")))
            .collect(),
    );
    POINTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, points.clone());
    points
}

impl Ring {
    /// Places every member at `virtual_nodes` points.
    pub fn new<'a>(members: impl IntoIterator<Item = &'a str>, virtual_nodes: u32) -> Ring {
        let mut ring = Ring::default();
        for member in members {
            ring.members += 1;
            let name: Arc<str> = member.into();
            for &point in points_of(member, virtual_nodes.max(1)).iter() {
                ring.points.insert(point, name.clone());
            }
        }
        ring
    }

    /// The first `count` distinct members clockwise from the key's hash.
    pub fn replicas(&self, key: &str, count: usize) -> Vec<String> {
        let want = count.min(self.members);
        let mut found: Vec<String> = Vec::with_capacity(want);
        let start = hash(key);
        for (_, member) in self.points.range(start..).chain(self.points.range(..start)) {
            if found.len() == want {
                break;
            }
            if !found.iter().any(|f| **f == **member) {
                found.push(member.to_string());
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
