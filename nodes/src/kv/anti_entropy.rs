//! Anti-entropy with bounded messages, for stores of any size.
//!
//! The seed sent its whole store in one gossip POST; once a store passed the 64 KiB body
//! limit every exchange was refused (413) and repair silently stopped. Here a round walks
//! the initiator's store in key order, one [`DigestPage`] at a time: the versions of the
//! keys in a key range `(after, upto]`, at most [`PAGE_BYTES`] of them. The peer answers
//! with a [`DigestReply`]: the items it holds in that range that are newer or missing on
//! the initiator (at most [`PAGE_BYTES`] of values, `truncated` when there is more, and
//! the initiator asks again), and the keys it wants because the initiator's copy is
//! newer or the peer lacks it. The initiator then pushes the wanted items in batches of
//! at most [`PAGE_BYTES`] (one item always fits: a value is smaller than a client body).
//!
//! A round covers only the keys both sides hold replicas of (the `shared` filter: the
//! ring names both among the key's `replication_factor` servers), so data stays on its
//! replicas; keys a node holds but no longer owns are handed off instead (see
//! [`super::node`]).
//!
//! Everything here is plain functions over the store, so the paging is unit-tested
//! without a network; `node.rs` carries the pages over HTTP.

use super::node::Item;
use super::version::{wins, Version};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Bound;

/// Rough bound on the payload of one anti-entropy message (digest page, reply, batch).
pub const PAGE_BYTES: usize = 128 * 1024;
/// Pages one round may exchange before it yields to the next interval.
pub const MAX_PAGES_PER_ROUND: usize = 256;

/// One page of the initiator's digest: its versions of the keys in `(after, upto]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DigestPage {
    /// Sender id.
    pub from: String,
    /// The range starts after this key (`None`: at the first key).
    pub after: Option<String>,
    /// The range ends at this key, inclusive (`None`: at the last key there is).
    pub upto: Option<String>,
    /// The sender's version of every key it holds in the range.
    pub versions: Vec<(String, Version)>,
}

/// The peer's answer to a [`DigestPage`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DigestReply {
    /// Responder id.
    pub from: String,
    /// Items in the range that the sender lacks or holds in an older version.
    pub items: Vec<Item>,
    /// More such items exist than fit in one reply: ask again.
    pub truncated: bool,
    /// Keys of the range whose sender copy is newer, or that the responder lacks.
    pub want: Vec<String>,
}

/// `POST /gossip/items` body: items the peer wanted (a JSON object, as every body is).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The items.
    pub items: Vec<Item>,
}

/// Approximate encoded size of an item (key, value, version and JSON punctuation).
pub fn item_bytes(item: &Item) -> usize {
    item.key.len() + item.value.len() + item.version.node.len() + 64
}

fn range<'s>(
    store: &'s BTreeMap<String, Item>,
    after: Option<&str>,
    upto: Option<&str>,
) -> impl Iterator<Item = &'s Item> {
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let end = upto.map_or(Bound::Unbounded, Bound::Included);
    store.range::<str, _>((start, end)).map(|(_, item)| item)
}

/// The page of `store` that starts after `after`: as many keys as fit in [`PAGE_BYTES`];
/// `upto` is `None` when the page reaches the end of the store.
/// Only keys for which `shared` holds are listed.
pub fn page(
    store: &BTreeMap<String, Item>,
    from: &str,
    after: Option<&str>,
    shared: &dyn Fn(&str) -> bool,
) -> DigestPage {
    let mut versions = Vec::new();
    let mut bytes = 0;
    let mut upto = None;
    let mut keys = range(store, after, None)
        .filter(|i| shared(&i.key))
        .peekable();
    while let Some(item) = keys.next() {
        bytes += item.key.len() + item.version.node.len() + 40;
        versions.push((item.key.clone(), item.version.clone()));
        if bytes >= PAGE_BYTES && keys.peek().is_some() {
            upto = Some(item.key.clone());
            break;
        }
    }
    DigestPage {
        from: from.to_string(),
        after: after.map(str::to_string),
        upto,
        versions,
    }
}

/// The responder's side: compares `page` with its own `store` over the page's range,
/// for the keys `shared` with the initiator (by the responder's ring).
pub fn reply(
    store: &BTreeMap<String, Item>,
    me: &str,
    page: &DigestPage,
    shared: &dyn Fn(&str) -> bool,
) -> DigestReply {
    let theirs: BTreeMap<&str, &Version> =
        page.versions.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut answer = DigestReply {
        from: me.to_string(),
        ..Default::default()
    };
    let mut bytes = 0;
    for item in range(store, page.after.as_deref(), page.upto.as_deref()) {
        if shared(&item.key) && wins(&item.version, theirs.get(item.key.as_str()).copied()) {
            let size = item_bytes(item);
            if bytes > 0 && bytes + size > PAGE_BYTES {
                answer.truncated = true;
                continue;
            }
            bytes += size;
            answer.items.push(item.clone());
        }
    }
    for (key, version) in &page.versions {
        if shared(key) && wins(version, store.get(key).map(|i| &i.version)) {
            answer.want.push(key.clone());
        }
    }
    answer
}

/// `items` in batches of at most [`PAGE_BYTES`] (an item larger than that travels alone).
pub fn chunks(items: Vec<Item>) -> Vec<Vec<Item>> {
    let mut out: Vec<Vec<Item>> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let size = item_bytes(&item);
        match out.last_mut() {
            Some(batch) if bytes + size <= PAGE_BYTES => batch.push(item),
            _ => {
                out.push(vec![item]);
                bytes = 0;
            }
        }
        bytes += size;
    }
    out
}

/// The wanted items of `store`, in batches of at most [`PAGE_BYTES`] (an item larger than
/// that travels alone).
pub fn batches(store: &BTreeMap<String, Item>, want: &[String]) -> Vec<Vec<Item>> {
    chunks(want.iter().filter_map(|k| store.get(k).cloned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(keys: usize, value_size: usize, node: &str, counter: u64) -> BTreeMap<String, Item> {
        (0..keys)
            .map(|i| {
                let key = format!("k{i:05}");
                let item = Item {
                    key: key.clone(),
                    value: "x".repeat(value_size),
                    version: Version {
                        counter,
                        node: node.into(),
                    },
                };
                (key, item)
            })
            .collect()
    }

    /// Runs whole rounds between `a` (initiator) and `b` until nothing changes, with
    /// every message bounded; returns the largest message seen.
    fn sync(a: &mut BTreeMap<String, Item>, b: &mut BTreeMap<String, Item>) -> usize {
        let mut largest = 0;
        for _ in 0..50 {
            let mut changed = false;
            let mut after: Option<String> = None;
            loop {
                let p = page(a, "a", after.as_deref(), &|_| true);
                largest = largest.max(serde_json::to_vec(&p).unwrap().len());
                let r = reply(b, "b", &p, &|_| true);
                largest = largest.max(serde_json::to_vec(&r).unwrap().len());
                for item in r.items.clone() {
                    changed = true;
                    a.insert(item.key.clone(), item);
                }
                for batch in batches(a, &r.want) {
                    largest = largest.max(serde_json::to_vec(&batch).unwrap().len());
                    for item in batch {
                        changed = true;
                        b.insert(item.key.clone(), item);
                    }
                }
                if r.truncated {
                    continue;
                }
                match p.upto {
                    Some(upto) => after = Some(upto),
                    None => break,
                }
            }
            if !changed {
                break;
            }
        }
        largest
    }

    #[test]
    fn large_stores_converge_with_bounded_messages() {
        // 2,000 keys of 1 KiB on one side (2 MB), 300 newer ones of 4 KiB on the other.
        let mut a = store(2000, 1024, "n1", 1);
        let mut b = store(300, 4096, "n2", 2);
        let largest = sync(&mut a, &mut b);
        assert_eq!(a, b, "both sides hold the same store");
        assert_eq!(a.len(), 2000);
        assert_eq!(a["k00007"].version.node, "n2", "the newer version won");
        assert!(
            largest <= 2 * PAGE_BYTES + 8 * 1024,
            "a message of {largest} bytes"
        );
    }

    #[test]
    fn only_shared_keys_travel() {
        let a = store(10, 10, "n1", 1);
        let b = BTreeMap::new();
        let even = |k: &str| k.ends_with(['0', '2', '4', '6', '8']);
        let p = page(&a, "a", None, &even);
        assert_eq!(p.versions.len(), 5, "the page lists only shared keys");
        let r = reply(&b, "b", &p, &even);
        assert_eq!(r.want.len(), 5);
        let none = reply(&b, "b", &p, &|_| false);
        assert!(none.want.is_empty() && none.items.is_empty());
        let r = reply(&a, "b", &page(&b, "a", None, &even), &even);
        assert_eq!(r.items.len(), 5, "the responder offers only shared keys");
    }

    #[test]
    fn an_empty_side_receives_everything() {
        let mut a = BTreeMap::new();
        let mut b = store(500, 2000, "n2", 3);
        sync(&mut a, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn one_value_larger_than_a_page_still_travels() {
        let mut a = store(1, PAGE_BYTES + 10, "n1", 5);
        let mut b = BTreeMap::new();
        sync(&mut a, &mut b);
        assert_eq!(a, b);
    }
}
