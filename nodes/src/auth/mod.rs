//! Peer authentication with a shared cluster secret.
//!
//! Every node of a cluster holds the same [`ClusterKey`]. Node-to-node traffic proves it:
//! a peer connection of the election/chat [`transport`](crate::runtime::transport) answers
//! a fresh challenge with an HMAC of it, and every internal HTTP request (KV replication
//! and gossip, registry membership calls) carries an HMAC of its method, path and body
//! ([`http`]). Anything else is refused and reported as a [`NodeEvent::Refused`]: one
//! line to a peer port can no longer crown a leader of term 2^64-1 or deliver a forged
//! message, and `POST /replicate` from outside can no longer plant a version.
//!
//! What this is and is not: it authenticates *who may speak* (a holder of the key), not
//! *what is on the wire* — there is no encryption, and an attacker on the path could
//! replay a captured internal request. Replays are harmless by design here (a replicated
//! item merges by version, a heartbeat repeats); against an on-path attacker run the
//! cluster over TLS or a VPN. No timestamps are signed, because node clocks may be skewed.
//!
//! Where the key comes from is the environment's business, like the clock's: the real
//! binaries read `--cluster-key-file` or a per-user file created on first start
//! ([`key_file`], like Erlang's cookie, so the seeds' commands work verbatim on one
//! machine); the simulator derives one key per run from the seed.
//!
//! [`NodeEvent::Refused`]: crate::runtime::NodeEvent::Refused

pub mod http;
pub mod key_file;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Shortest accepted secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// The cluster's shared secret. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct ClusterKey(Arc<[u8]>);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

impl ClusterKey {
    /// A key from secret bytes (at least [`MIN_SECRET_BYTES`]).
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "a cluster key needs at least {MIN_SECRET_BYTES} bytes, got {}",
                secret.len()
            ));
        }
        Ok(ClusterKey(secret.into()))
    }

    /// A key derived from a label (the simulator's per-run key: `label` names the seed).
    pub fn derived(label: &str) -> Self {
        let digest = Sha256::digest(format!("simnode cluster key: {label}").as_bytes());
        ClusterKey(digest.as_slice().into())
    }

    fn hmac(&self, purpose: &str, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        // Length-prefixed parts under a purpose label: a MAC made for one use, or one split
        // of the bytes, is never valid for another.
        for part in std::iter::once(purpose.as_bytes()).chain(parts.iter().copied()) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// The MAC of `parts` for `purpose`, as lowercase hex.
    pub fn sign(&self, purpose: &str, parts: &[&[u8]]) -> String {
        hex(&self.hmac(purpose, parts).finalize().into_bytes())
    }

    /// The raw MAC of `parts` for `purpose` (32 bytes), for binary messages (gossip).
    pub fn mac(&self, purpose: &str, parts: &[&[u8]]) -> [u8; 32] {
        self.hmac(purpose, parts).finalize().into_bytes().into()
    }

    /// Whether `mac` is the raw MAC of `parts` for `purpose` (compared in constant time).
    pub fn verify_mac(&self, purpose: &str, parts: &[&[u8]], mac: &[u8]) -> bool {
        self.hmac(purpose, parts).verify_slice(mac).is_ok()
    }

    /// Whether `mac_hex` is the MAC of `parts` for `purpose` (compared in constant time).
    pub fn verify(&self, purpose: &str, parts: &[&[u8]], mac_hex: &str) -> bool {
        match unhex(mac_hex) {
            Some(mac) => self.hmac(purpose, parts).verify_slice(&mac).is_ok(),
            None => false,
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    text
}

/// The bytes of a hex string; `None` if it is not one.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 256 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mac_verifies_only_for_its_key_purpose_and_parts() {
        let key = ClusterKey::derived("seed 1");
        let mac = key.sign("http", &[b"POST", b"/replicate", b"{}"]);
        assert!(key.verify("http", &[b"POST", b"/replicate", b"{}"], &mac));
        assert!(!key.verify("hello", &[b"POST", b"/replicate", b"{}"], &mac));
        assert!(!key.verify("http", &[b"POST", b"/replicate", b"{ }"], &mac));
        // Moving bytes between parts changes the MAC.
        assert!(!key.verify("http", &[b"POST/", b"replicate", b"{}"], &mac));
        let other = ClusterKey::derived("seed 2");
        assert!(!other.verify("http", &[b"POST", b"/replicate", b"{}"], &mac));
        assert!(!key.verify("http", &[b"POST", b"/replicate", b"{}"], "zz"));
        assert!(!key.verify("http", &[b"POST", b"/replicate", b"{}"], ""));
    }

    #[test]
    fn short_secrets_are_refused_and_debug_hides_the_key() {
        assert!(ClusterKey::new(b"short").is_err());
        let key = ClusterKey::new(b"0123456789abcdef").expect("16 bytes");
        assert_eq!(format!("{key:?}"), "ClusterKey(..)");
        assert_eq!(unhex(&hex(&[0, 1, 254, 255])), Some(vec![0, 1, 254, 255]));
        assert_eq!(unhex("0g"), None);
    }
}
