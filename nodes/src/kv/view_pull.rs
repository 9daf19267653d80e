//! Pulling a member's whole view: the anti-entropy under SWIM's gossip.
//!
//! SWIM spreads each change a bounded number of times (foca's `max_transmissions`), so a
//! server can miss one, and when a thousand servers start together many do: at 59 s a
//! thousand-server cluster still had servers missing a member they would only learn of
//! from a direct probe. Serf (seed 003) closes that gap with memberlist's push/pull: now
//! and then a server takes another's full state and merges it. Here a server asks one
//! random member for its view ([`Kind::Ask`], an empty datagram) and takes from the answer
//! ([`Kind::View`] datagrams) the identities it has never heard of ([`unknown`]), which it
//! hands foca with `apply_many` (and foca spreads). What it already knows it leaves to
//! SWIM: a pulled "suspect" or "down" about a known member would spread old suspicion
//! faster than the member can refute it (on lossy links that tripled the false downs).
//!
//! When: soon after the view grows (a server forming its view, or rejoining), then at
//! doubling intervals while the view holds still (a pull's answer can be lost, or come
//! from a member that knows no more), up to a slow steady pace. Answers are rationed per
//! period, so a member that asks too often gets silence, not amplification.

use super::swim::{Peer, MAX_PACKET};
use foca::Member;
use std::collections::BTreeSet;
use std::time::Duration;

/// What a datagram (after its MAC) carries; the first byte says which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A foca message.
    Swim = 0,
    /// "Send me your view"; no body.
    Ask = 1,
    /// Part of a view: members, one after another.
    View = 2,
}

impl Kind {
    /// The kind a datagram's first byte names.
    pub fn of(byte: u8) -> Option<Kind> {
        match byte {
            0 => Some(Kind::Swim),
            1 => Some(Kind::Ask),
            2 => Some(Kind::View),
            _ => None,
        }
    }
}

/// Periods between pulls once the view has held still for long.
pub const QUIET_PERIODS: u32 = 30;
/// Periods before the first pull after the view grew; each pull without growth since
/// doubles the wait, up to [`QUIET_PERIODS`].
pub const GROWING_PERIODS: u32 = 3;
/// Views a server may send in a burst; one more is allowed per sample tick (four a
/// protocol period).
pub const ANSWERS_BANKED: u32 = 4;

/// How many views a server may still send: a whole view is some twenty datagrams at 1,000
/// members, so asks beyond the ration (a member asking in a loop) go unanswered rather
/// than multiplying the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerRation {
    left: u32,
}

impl Default for AnswerRation {
    fn default() -> Self {
        AnswerRation {
            left: ANSWERS_BANKED,
        }
    }
}

impl AnswerRation {
    /// Takes one answer from the ration: `false` when none is left.
    pub fn take(&mut self) -> bool {
        let some = self.left > 0;
        self.left = self.left.saturating_sub(1);
        some
    }

    /// One more answer allowed (a sample tick), up to [`ANSWERS_BANKED`].
    pub fn refill(&mut self) {
        self.left = (self.left + 1).min(ANSWERS_BANKED);
    }
}

/// The delay before the next pull when `quiet` pulls went by since the view last grew:
/// [`GROWING_PERIODS`] doubled `quiet` times, at most [`QUIET_PERIODS`], plus up to one
/// period of `jitter` (a fraction in 0..1) so that servers do not pull in step.
pub fn next_pull(period: Duration, quiet: u32, jitter: f64) -> Duration {
    let periods = GROWING_PERIODS
        .saturating_mul(1 << quiet.min(16))
        .min(QUIET_PERIODS);
    period * periods + period.mul_f64(jitter.clamp(0.0, 1.0))
}

/// A view as datagram bodies of at most [`MAX_PACKET`] bytes each: postcard-encoded
/// members back to back (join placeholders, generation 0, left out).
pub fn encode<'m>(members: impl Iterator<Item = &'m Member<Peer>>) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    let mut body = Vec::new();
    for member in members.filter(|m| m.id().generation != 0) {
        let Ok(bytes) = postcard::to_allocvec(member) else {
            continue;
        };
        if bytes.len() > MAX_PACKET {
            continue;
        }
        if body.len() + bytes.len() > MAX_PACKET {
            bodies.push(std::mem::take(&mut body));
        }
        body.extend_from_slice(&bytes);
    }
    if !body.is_empty() {
        bodies.push(body);
    }
    bodies
}

/// The members in one body, or why it is refused (nothing is applied from a body that
/// does not decode to its end).
pub fn decode(mut body: &[u8]) -> Result<Vec<Member<Peer>>, &'static str> {
    if body.len() > MAX_PACKET {
        return Err("view part longer than a gossip packet");
    }
    let mut members = Vec::new();
    while !body.is_empty() {
        let (member, rest) = postcard::take_from_bytes::<Member<Peer>>(body)
            .map_err(|_| "view part does not decode")?;
        if member.id().generation == 0 {
            return Err("view part names a member of generation 0");
        }
        members.push(member);
        body = rest;
    }
    Ok(members)
}

/// The pulled members whose identity (id and generation) is not among `known`.
pub fn unknown<'k>(
    known: impl Iterator<Item = &'k Member<Peer>>,
    me: &Peer,
    pulled: Vec<Member<Peer>>,
) -> Vec<Member<Peer>> {
    let known: BTreeSet<(&str, u64)> = known
        .map(|m| m.id())
        .chain(std::iter::once(me))
        .map(|p| (p.id.as_str(), p.generation))
        .collect();
    pulled
        .into_iter()
        .filter(|m| !known.contains(&(m.id().id.as_str(), m.id().generation)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    /// A burst of asks gets the banked answers and no more; each tick allows one more, and
    /// quiet ticks bank no more than the burst.
    #[test]
    fn asks_beyond_the_ration_go_unanswered() {
        let mut ration = AnswerRation::default();
        let answered = (0..10).filter(|_| ration.take()).count();
        assert_eq!(answered, ANSWERS_BANKED as usize);
        ration.refill();
        assert!(ration.take());
        assert!(!ration.take());
        for _ in 0..100 {
            ration.refill();
        }
        let answered = (0..10).filter(|_| ration.take()).count();
        assert_eq!(answered, ANSWERS_BANKED as usize);
    }

    fn peer(i: u32) -> Peer {
        Peer {
            id: format!("n{i}"),
            addr: SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8], 7000)),
            generation: 1_700_000_000_000 + u64::from(i),
        }
    }

    #[test]
    fn a_thousand_members_round_trip_in_packets() {
        let members: Vec<Member<Peer>> = (1..=1000)
            .map(|i| {
                if i % 7 == 0 {
                    Member::down(peer(i))
                } else {
                    Member::alive(peer(i))
                }
            })
            .collect();
        let bodies = encode(members.iter());
        assert!(bodies
            .iter()
            .all(|b| !b.is_empty() && b.len() <= MAX_PACKET));
        assert!(bodies.len() < 60, "{} bodies", bodies.len());
        let back: Vec<Member<Peer>> = bodies
            .iter()
            .flat_map(|b| decode(b).expect("decodes"))
            .collect();
        assert_eq!(back, members);
    }

    #[test]
    fn placeholders_are_not_sent() {
        let placeholder = Member::down(Peer {
            generation: 0,
            ..peer(1)
        });
        let members = [placeholder, Member::alive(peer(2))];
        let back = decode(&encode(members.iter())[0]).expect("decodes");
        assert_eq!(back, [Member::alive(peer(2))]);
    }

    /// Noise is refused whole, never a panic and never a partial view.
    #[test]
    fn noise_is_refused() {
        let good = encode([Member::alive(peer(3))].iter()).remove(0);
        let mut truncated = good.clone();
        truncated.pop();
        assert!(decode(&truncated).is_err());
        let mut garbage = 0x9e37_79b9_7f4a_7c15u64;
        let mut refused = 0;
        for len in 1..300usize {
            let bytes: Vec<u8> = crate::noise::bytes(&mut garbage, len);
            refused += usize::from(decode(&bytes).is_err());
        }
        assert!(refused > 250, "only {refused} of 299 refused");
        assert!(decode(&vec![0; MAX_PACKET + 1]).is_err());
    }

    /// Only news is taken: a known identity's pulled state is left to SWIM, a new
    /// generation of a known id is news.
    #[test]
    fn only_unknown_identities_are_taken() {
        let known = [Member::alive(peer(1)), Member::alive(peer(2))];
        let reborn = Peer {
            generation: peer(2).generation + 1,
            ..peer(2)
        };
        let pulled = vec![
            Member::down(peer(1)),
            Member::alive(reborn.clone()),
            Member::alive(peer(3)),
            Member::alive(peer(9)),
        ];
        let taken = unknown(known.iter(), &peer(9), pulled);
        assert_eq!(taken, [Member::alive(reborn), Member::alive(peer(3))]);
    }

    #[test]
    fn pulls_slow_down_while_the_view_holds_still() {
        let period = Duration::from_secs(1);
        let waits: Vec<u64> = (0..6)
            .map(|quiet| next_pull(period, quiet, 0.0).as_secs())
            .collect();
        assert_eq!(waits, [3, 6, 12, 24, 30, 30]);
        assert_eq!(next_pull(period, 40, 0.5), Duration::from_millis(30_500));
        assert_eq!(next_pull(period, 0, 7.0), Duration::from_secs(4));
    }
}
