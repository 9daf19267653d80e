//! Damage a `disk` fault does to a durable log's bytes: the simulator's disk image, or a
//! real node's data file while the node is down. It tears the last record or corrupts a
//! seeded random one (its length, checksum or payload); the node meets the damage at its
//! next start, when its log recovery must detect it.

use nodes::runtime::log::scan;
use rand::Rng;

/// The field of a record a `disk corrupt` fault damages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The 4-byte length.
    Length,
    /// The 4-byte checksum.
    Checksum,
    /// The payload.
    Payload,
}

impl Part {
    /// The field's name, for people.
    pub fn name(self) -> &'static str {
        match self {
            Part::Length => "length",
            Part::Checksum => "checksum",
            Part::Payload => "payload",
        }
    }
}

/// Cuts the last record short at a seeded point. Returns what was done.
pub fn tear(bytes: &mut Vec<u8>, rng: &mut impl Rng) -> String {
    let frames = scan(bytes).frames;
    let Some(last) = frames.last().cloned() else {
        return "no record to tear".into();
    };
    let cut = rng.gen_range(last.start + 1..last.end);
    bytes.truncate(cut);
    format!(
        "tore record {} of {} at byte {} of {}",
        frames.len(),
        frames.len(),
        cut - last.start,
        last.len()
    )
}

/// Flips one byte of a seeded random record, in a seeded random field of it: its
/// length, its checksum or its payload. Returns what was done.
pub fn corrupt(bytes: &mut [u8], rng: &mut impl Rng) -> String {
    let part = match rng.gen_range(0..3) {
        0 => Part::Length,
        1 => Part::Checksum,
        _ => Part::Payload,
    };
    corrupt_part(bytes, part, rng)
}

/// Flips one byte of `part` of a seeded random record (a payload byte, or for an
/// empty payload its checksum). Returns what was done.
pub fn corrupt_part(bytes: &mut [u8], part: Part, rng: &mut impl Rng) -> String {
    let frames = scan(bytes).frames;
    if frames.is_empty() {
        return "no record to corrupt".into();
    }
    let index = rng.gen_range(0..frames.len());
    let frame = frames[index].clone();
    // Frame layout: length (4 bytes) | checksum (4 bytes) | payload.
    let (part, field) = match part {
        Part::Payload if frame.len() > 8 => (part, frame.start + 8..frame.end),
        Part::Length => (part, frame.start..frame.start + 4),
        _ => (Part::Checksum, frame.start + 4..frame.start + 8),
    };
    let at = rng.gen_range(field);
    bytes[at] ^= 0x5a;
    format!(
        "corrupted the {} of record {} of {}",
        part.name(),
        index + 1,
        frames.len()
    )
}
