//! The simulated disk under each server's durable log.
//!
//! The harness owns one [`SimDisk`] per server, so it outlives crashes and restarts. It
//! distinguishes synced from unsynced bytes: a crash keeps only what was synced. A `disk`
//! fault tears the last record or corrupts a seeded random one (its length, checksum or
//! payload); the node meets the damage at its next start, when its log recovery must
//! detect it.

use nodes::runtime::Storage;
use rand::Rng;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

pub use simcore::damage::Part;

/// Room made for a disk image at its first append: a chat fuzz seed's log (up to ~64 kB
/// a server) fits without being moved.
const FIRST_ROOM: usize = 256 * 1024;

/// A disk image shared between the harness and the node currently running on it.
#[derive(Clone, Default)]
pub struct SimDisk {
    image: Arc<Mutex<Image>>,
}

#[derive(Default)]
struct Image {
    bytes: Vec<u8>,
    synced: usize,
}

impl SimDisk {
    fn image(&self) -> MutexGuard<'_, Image> {
        self.image.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Power loss: everything not synced is gone. Returns the bytes lost.
    pub fn crash(&self) -> usize {
        let mut image = self.image();
        let lost = image.bytes.len() - image.synced;
        let synced = image.synced;
        image.bytes.truncate(synced);
        lost
    }

    /// Cuts the last record short at a seeded point. Returns what was done.
    pub fn tear(&self, rng: &mut impl Rng) -> String {
        let mut image = self.image();
        let done = simcore::damage::tear(&mut image.bytes, rng);
        image.synced = image.synced.min(image.bytes.len());
        done
    }

    /// Flips one byte of a seeded random record, in a seeded random field of it: its
    /// length, its checksum or its payload. Returns what was done.
    pub fn corrupt(&self, rng: &mut impl Rng) -> String {
        simcore::damage::corrupt(&mut self.image().bytes, rng)
    }

    /// Flips one byte of `part` of a seeded random record (a payload byte, or for an
    /// empty payload its checksum). Returns what was done.
    pub fn corrupt_part(&self, part: Part, rng: &mut impl Rng) -> String {
        simcore::damage::corrupt_part(&mut self.image().bytes, part, rng)
    }

    /// Bytes stored, synced or not.
    pub fn len(&self) -> usize {
        self.image().bytes.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Storage for SimDisk {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        Ok(self.image().bytes.clone())
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut image = self.image();
        if image.bytes.capacity() == 0 {
            // A log grows by small records: growing its image from nothing copied it
            // at every doubling, ~5 % of a chat fuzz seed (issue 16).
            image.bytes.reserve(FIRST_ROOM.max(bytes.len()));
        }
        image.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut image = self.image();
        image.synced = image.bytes.len();
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut image = self.image();
        image.bytes.truncate(len as usize);
        image.synced = image.synced.min(len as usize);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodes::runtime::DurableLog;
    use rand::SeedableRng;

    fn log_with(disk: &SimDisk, records: &[&[u8]], sync_first: usize) {
        let (mut log, _) = DurableLog::open(Box::new(disk.clone())).unwrap();
        for (i, r) in records.iter().enumerate() {
            log.append(r).unwrap();
            if i + 1 == sync_first {
                log.sync().unwrap();
            }
        }
    }

    #[test]
    fn crash_loses_only_the_unsynced_tail() {
        let disk = SimDisk::default();
        log_with(&disk, &[b"a", b"b", b"c"], 2);
        disk.crash();
        let (_, rec) = DurableLog::open(Box::new(disk.clone())).unwrap();
        assert_eq!(rec.records, vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(rec.damage.is_none());
    }

    #[test]
    fn torn_and_corrupt_records_are_detected_on_recovery() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let disk = SimDisk::default();
        log_with(&disk, &[b"one", b"two", b"three"], 3);
        disk.tear(&mut rng);
        let (_, rec) = DurableLog::open(Box::new(disk.clone())).unwrap();
        assert_eq!(rec.records.len(), 2);
        assert_eq!(rec.damage.unwrap().kind, "torn");

        let disk = SimDisk::default();
        log_with(&disk, &[b"one", b"two", b"three"], 3);
        disk.corrupt(&mut rng);
        let (_, rec) = DurableLog::open(Box::new(disk.clone())).unwrap();
        assert!(rec.records.len() < 3);
        assert_eq!(rec.damage.unwrap().kind, "corrupt");
    }

    #[test]
    fn corruption_of_each_field_is_detected_and_reported_on_recovery() {
        for part in [Part::Length, Part::Checksum, Part::Payload] {
            for seed in 0..20 {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let disk = SimDisk::default();
                log_with(&disk, &[b"one", b"two", b"three", b"four"], 4);
                let effect = disk.corrupt_part(part, &mut rng);
                assert!(effect.contains(part.name()), "{effect}");
                let (_, rec) = DurableLog::open(Box::new(disk.clone())).unwrap();
                let damage = rec.damage.expect("damage reported");
                assert!(rec.records.len() < 4, "{part:?} seed {seed}: {effect}");
                // Whatever survives is a clean prefix: no garbage accepted.
                let all: [&[u8]; 4] = [b"one", b"two", b"three", b"four"];
                assert_eq!(rec.records, all[..rec.records.len()].to_vec());
                assert!(["corrupt", "torn"].contains(&damage.kind.as_str()));
                if part != Part::Length {
                    assert_eq!(damage.kind, "corrupt", "{part:?}");
                }
            }
        }
    }

    #[test]
    fn a_corrupt_fault_hits_lengths_checksums_and_payloads() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut hit = std::collections::BTreeSet::new();
        for _ in 0..30 {
            let disk = SimDisk::default();
            log_with(&disk, &[b"one", b"two", b"three"], 3);
            let effect = disk.corrupt(&mut rng);
            for name in ["length", "checksum", "payload"] {
                if effect.contains(name) {
                    hit.insert(name);
                }
            }
        }
        assert_eq!(hit.len(), 3, "only {hit:?} were ever damaged");
    }
}
