//! The durable log: checksummed records over a [`Storage`].
//!
//! Each record is framed as `length (u32 LE) | crc32 of payload (u32 LE) | payload`. On
//! open, records are read until the first one that is incomplete (a torn tail: the crash
//! came mid-write) or whose checksum does not match (corruption); that record and all after
//! it are dropped and cut from storage, and the damage is reported, so a node recovers a
//! clean prefix instead of delivering garbage.
//!
//! Any of the three fields can be damaged. A bad payload or checksum fails the checksum.
//! A bad length either frames a different byte range (which fails the checksum), claims
//! more than any writer writes ([`MAX_RECORD`]: corrupt, never an allocation of that size
//! — the scan only compares offsets), or runs past the end, which cannot be told from a
//! torn tail and is cut the same way.

use super::storage::Storage;
use serde::{Deserialize, Serialize};
use std::io;
use std::ops::Range;

const HEADER_BYTES: usize = 8;

/// The largest payload a record may have; a stored length above it is corruption.
pub const MAX_RECORD: usize = 16 << 20;

/// What recovery found wrong with the stored bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Damage {
    /// `"torn"` (incomplete last record) or `"corrupt"` (checksum mismatch).
    pub kind: String,
    /// Byte offset of the first bad record.
    pub offset: u64,
    /// Bytes dropped from that offset to the end.
    pub dropped_bytes: u64,
}

/// A log opened for appending, after recovery.
pub struct DurableLog {
    storage: Box<dyn Storage>,
}

/// The records that survived, and what was dropped.
pub struct Recovery {
    /// Payloads of the valid prefix, in append order.
    pub records: Vec<Vec<u8>>,
    /// Set when a torn or corrupt record was found and cut off.
    pub damage: Option<Damage>,
}

impl DurableLog {
    /// Reads and validates the stored records, cuts any damaged tail, and returns the log.
    pub fn open(mut storage: Box<dyn Storage>) -> io::Result<(DurableLog, Recovery)> {
        let bytes = storage.read_all()?;
        let scan = scan(&bytes);
        let records = scan
            .records
            .iter()
            .map(|r| bytes[r.clone()].to_vec())
            .collect();
        if scan.damage.is_some() {
            storage.truncate(scan.valid_len as u64)?;
        }
        Ok((
            DurableLog { storage },
            Recovery {
                records,
                damage: scan.damage,
            },
        ))
    }

    /// Appends one record (not yet durable); at most [`MAX_RECORD`] bytes.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        if payload.len() > MAX_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a log record holds at most {MAX_RECORD} bytes, not {}",
                    payload.len()
                ),
            ));
        }
        self.storage.append(&frame(payload))
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.storage.sync()
    }
}

/// Frames a payload as one record.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Result of scanning raw log bytes.
pub struct Scan {
    /// Byte ranges of valid record payloads.
    pub records: Vec<Range<usize>>,
    /// Byte ranges of whole valid records (header included).
    pub frames: Vec<Range<usize>>,
    /// Length of the valid prefix.
    pub valid_len: usize,
    /// What stopped the scan early, if anything.
    pub damage: Option<Damage>,
}

/// Scans raw bytes into records; used by recovery and by the simulator's disk faults.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut frames = Vec::new();
    let mut at = 0usize;
    let mut damage = None;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let torn = || Damage {
            kind: "torn".into(),
            offset: at as u64,
            dropped_bytes: (bytes.len() - at) as u64,
        };
        if rest.len() < HEADER_BYTES {
            damage = Some(torn());
            break;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let corrupt = || Damage {
            kind: "corrupt".into(),
            offset: at as u64,
            dropped_bytes: (bytes.len() - at) as u64,
        };
        if len > MAX_RECORD {
            damage = Some(corrupt());
            break;
        }
        if rest.len() < HEADER_BYTES + len {
            damage = Some(torn());
            break;
        }
        let payload = at + HEADER_BYTES..at + HEADER_BYTES + len;
        if crc32fast::hash(&bytes[payload.clone()]) != crc {
            damage = Some(corrupt());
            break;
        }
        frames.push(at..payload.end);
        records.push(payload.clone());
        at = payload.end;
    }
    let valid_len = frames.last().map(|f| f.end).unwrap_or(0);
    Scan {
        records,
        frames,
        valid_len,
        damage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Mem(Vec<u8>);
    impl Storage for Mem {
        fn read_all(&mut self) -> io::Result<Vec<u8>> {
            Ok(self.0.clone())
        }
        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.0.extend_from_slice(bytes);
            Ok(())
        }
        fn sync(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn truncate(&mut self, len: u64) -> io::Result<()> {
            self.0.truncate(len as usize);
            Ok(())
        }
    }

    fn bytes_of(records: &[&[u8]]) -> Vec<u8> {
        records.iter().flat_map(|r| frame(r)).collect()
    }

    #[test]
    fn clean_log_recovers_every_record() {
        let (_, rec) = DurableLog::open(Box::new(Mem(bytes_of(&[b"a", b"bb", b""])))).unwrap();
        assert_eq!(rec.records, vec![b"a".to_vec(), b"bb".to_vec(), vec![]]);
        assert_eq!(rec.damage, None);
    }

    #[test]
    fn torn_tail_is_dropped_and_reported() {
        let mut bytes = bytes_of(&[b"first", b"second"]);
        bytes.truncate(bytes.len() - 3);
        let (_, rec) = DurableLog::open(Box::new(Mem(bytes))).unwrap();
        assert_eq!(rec.records, vec![b"first".to_vec()]);
        let damage = rec.damage.unwrap();
        assert_eq!(damage.kind, "torn");
        assert_eq!(damage.offset, 13);
    }

    #[test]
    fn corrupt_record_stops_recovery_there() {
        let mut bytes = bytes_of(&[b"one", b"two", b"three"]);
        bytes[11 + 9] ^= 0xff; // a payload byte of "two"
        let (_, rec) = DurableLog::open(Box::new(Mem(bytes))).unwrap();
        assert_eq!(rec.records, vec![b"one".to_vec()]);
        assert_eq!(rec.damage.unwrap().kind, "corrupt");
    }

    /// "one" (11 bytes framed) then "two" at offset 11: length at 11..15, crc 15..19.
    fn damaged(at: usize, mask: u8) -> Recovery {
        let mut bytes = bytes_of(&[b"one", b"two", b"three"]);
        bytes[at] ^= mask;
        DurableLog::open(Box::new(Mem(bytes))).unwrap().1
    }

    #[test]
    fn a_corrupt_payload_is_caught_by_the_checksum() {
        let rec = damaged(11 + 8, 0x01);
        assert_eq!(rec.records, vec![b"one".to_vec()]);
        assert_eq!(rec.damage.unwrap().kind, "corrupt");
    }

    #[test]
    fn a_corrupt_checksum_is_caught() {
        for at in 15..19 {
            let rec = damaged(at, 0x5a);
            assert_eq!(rec.records, vec![b"one".to_vec()], "byte {at}");
            let damage = rec.damage.unwrap();
            assert_eq!((damage.kind.as_str(), damage.offset), ("corrupt", 11));
        }
    }

    #[test]
    fn a_corrupt_length_never_frames_garbage_nor_allocates_it() {
        // A length that frames other bytes fails their checksum.
        let rec = damaged(11, 0x01); // 3 -> 2
        assert_eq!(rec.records, vec![b"one".to_vec()]);
        assert_eq!(rec.damage.unwrap().kind, "corrupt");
        // A length no writer writes (about 1.5 GB) is corruption, not a torn tail, and
        // is never allocated.
        let rec = damaged(14, 0x5a);
        assert_eq!(rec.records, vec![b"one".to_vec()]);
        let damage = rec.damage.unwrap();
        assert_eq!((damage.kind.as_str(), damage.offset), ("corrupt", 11));
        // One past the end looks exactly like a torn tail and is cut the same way.
        let rec = damaged(11, 0x40); // 3 -> 67, beyond the 24 bytes left
        assert_eq!(rec.records, vec![b"one".to_vec()]);
        assert_eq!(rec.damage.unwrap().offset, 11);
    }

    #[test]
    fn a_record_larger_than_the_limit_is_refused() {
        let (mut log, _) = DurableLog::open(Box::new(Mem::default())).unwrap();
        assert!(log.append(&vec![0; MAX_RECORD + 1]).is_err());
        assert!(log.append(b"fine").is_ok());
    }

    #[test]
    fn appends_after_damage_follow_the_valid_prefix() {
        let mut bytes = bytes_of(&[b"keep"]);
        bytes.extend_from_slice(&[1, 2, 3]);
        let (mut log, _) = DurableLog::open(Box::new(Mem(bytes))).unwrap();
        log.append(b"next").unwrap();
        let scan = scan(&stored_bytes(log));
        assert_eq!(scan.records.len(), 2);
        assert!(scan.damage.is_none());
    }

    fn stored_bytes(log: DurableLog) -> Vec<u8> {
        let mut storage = log.storage;
        storage.read_all().unwrap()
    }
}
