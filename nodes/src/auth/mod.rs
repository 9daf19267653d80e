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
///
/// It holds the HMAC already keyed with the secret: keying hashes the padded key twice,
/// which every signed request would otherwise pay again; a MAC starts from a clone.
#[derive(Clone)]
pub struct ClusterKey(Arc<Hmac<Sha256>>);

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
        Ok(Self::keyed(secret))
    }

    /// A key derived from a label (the simulator's per-run key: `label` names the seed).
    pub fn derived(label: &str) -> Self {
        let digest = Sha256::digest(format!("simnode cluster key: {label}").as_bytes());
        Self::keyed(digest.as_slice())
    }

    fn keyed(secret: &[u8]) -> Self {
        let mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
        ClusterKey(Arc::new(mac))
    }

    fn hmac(&self, purpose: &str, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = Hmac::clone(&self.0);
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
        let mut mac = [0u8; MAX_HEX / 2];
        match unhex_into(mac_hex, &mut mac) {
            Some(mac) => self.hmac(purpose, parts).verify_slice(mac).is_ok(),
            None => false,
        }
    }
}

/// Longest hex string [`unhex`] reads.
const MAX_HEX: usize = 256;

/// Lowercase hex of `bytes` (a MAC per signed request: no formatter per byte).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// The bytes of a hex string (either case); `None` if it is not one.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let mut bytes = [0u8; MAX_HEX / 2];
    unhex_into(text, &mut bytes).map(<[u8]>::to_vec)
}

/// [`unhex`] into `out` (every request's MAC is read: no allocation for it).
fn unhex_into<'a>(text: &str, out: &'a mut [u8; MAX_HEX / 2]) -> Option<&'a [u8]> {
    if !text.len().is_multiple_of(2) || text.len() > MAX_HEX {
        return None;
    }
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(&out[..text.len() / 2])
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
        assert_eq!(unhex("+1"), None);
        assert_eq!(unhex("FfA0"), Some(vec![255, 160]));
        assert_eq!(hex(&[0x0f, 0xa0]), "0fa0");
    }
}
