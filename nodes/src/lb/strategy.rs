//! The two balancing strategies of seed 001, written by hand (the seed's exercise).
//!
//! Both choose among the backends that are up and not yet tried for this request, and
//! both keep a cursor just past the last choice, so choices rotate:
//! - **round robin** takes the next backend after the cursor, whatever its load;
//! - **least connections** takes the backend with the fewest requests in flight through
//!   this balancer, ties broken by the same rotation (so equal backends still alternate).
//!
//! Round robin ignores how fast a backend works: under load, a one-worker backend gets
//! the same share as a four-worker one, its queue grows and its requests wait. Least
//! connections sends less to a backend whose requests are still in flight.

use std::fmt;

/// How the balancer chooses a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Each backend in turn.
    RoundRobin,
    /// The backend with the fewest requests in flight.
    LeastConnections,
}

impl Strategy {
    /// Parses `round_robin` or `least_connections` (the seed's `--strategy` values).
    pub fn parse(text: &str) -> Result<Strategy, String> {
        match text {
            "round_robin" => Ok(Strategy::RoundRobin),
            "least_connections" => Ok(Strategy::LeastConnections),
            _ => Err(format!(
                "unknown strategy \"{text}\": expected round_robin or least_connections"
            )),
        }
    }

    /// The name used by flags, scenario files and `/lb-stats`.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::LeastConnections => "least_connections",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend the picker may choose: its position in the backend list and its load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Position in the balancer's backend list.
    pub index: usize,
    /// Requests this balancer has in flight to it.
    pub in_flight: usize,
}

/// A strategy and its rotation cursor.
#[derive(Clone, Debug)]
pub struct Picker {
    strategy: Strategy,
    /// The backend index the rotation starts from next time.
    cursor: usize,
}

impl Picker {
    /// A picker starting at the first backend.
    pub fn new(strategy: Strategy) -> Picker {
        Picker {
            strategy,
            cursor: 0,
        }
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Chooses one of `candidates` (any order) and moves the cursor past it; `None` when
    /// there is no candidate.
    pub fn pick(&mut self, candidates: &[Candidate]) -> Option<usize> {
        // Rotation order: indices at or after the cursor first, then the ones before it.
        let rotation = |c: &Candidate| (c.index < self.cursor, c.index);
        let chosen = match self.strategy {
            Strategy::RoundRobin => candidates.iter().min_by_key(|c| rotation(c)),
            Strategy::LeastConnections => {
                candidates.iter().min_by_key(|c| (c.in_flight, rotation(c)))
            }
        }?;
        self.cursor = chosen.index + 1;
        Some(chosen.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(loads: &[usize]) -> Vec<Candidate> {
        loads
            .iter()
            .enumerate()
            .map(|(index, &in_flight)| Candidate { index, in_flight })
            .collect()
    }

    fn picks(picker: &mut Picker, candidates: &[Candidate], n: usize) -> Vec<usize> {
        (0..n).filter_map(|_| picker.pick(candidates)).collect()
    }

    #[test]
    fn round_robin_takes_each_backend_in_turn_whatever_its_load() {
        let mut picker = Picker::new(Strategy::RoundRobin);
        assert_eq!(
            picks(&mut picker, &all(&[9, 0, 5]), 7),
            [0, 1, 2, 0, 1, 2, 0]
        );
    }

    #[test]
    fn round_robin_skips_a_backend_that_is_down_and_keeps_the_rotation() {
        let mut picker = Picker::new(Strategy::RoundRobin);
        let up = all(&[0, 0, 0]);
        assert_eq!(picker.pick(&up), Some(0));
        // n2 (index 1) is down: the next in turn is index 2, then back to 0.
        let without_1: Vec<Candidate> = up.iter().copied().filter(|c| c.index != 1).collect();
        assert_eq!(picks(&mut picker, &without_1, 3), [2, 0, 2]);
        assert_eq!(picks(&mut picker, &up, 3), [0, 1, 2]);
    }

    #[test]
    fn least_connections_takes_the_least_loaded_and_rotates_among_ties() {
        let mut picker = Picker::new(Strategy::LeastConnections);
        assert_eq!(picker.pick(&all(&[3, 1, 2])), Some(1));
        assert_eq!(picker.pick(&all(&[3, 4, 2])), Some(2));
        // All equal: the rotation continues after the last choice (index 2).
        assert_eq!(picks(&mut picker, &all(&[1, 1, 1]), 4), [0, 1, 2, 0]);
        // A tie between 0 and 2 with the cursor at 1: 2 comes first in the rotation.
        assert_eq!(picker.pick(&all(&[0, 5, 0])), Some(2));
    }

    #[test]
    fn no_candidate_no_pick() {
        for strategy in [Strategy::RoundRobin, Strategy::LeastConnections] {
            assert_eq!(Picker::new(strategy).pick(&[]), None);
        }
    }

    #[test]
    fn strategies_parse_by_their_seed_names_only() {
        for strategy in [Strategy::RoundRobin, Strategy::LeastConnections] {
            assert_eq!(Strategy::parse(strategy.name()), Ok(strategy));
        }
        let refused = Strategy::parse("random").unwrap_err();
        assert!(
            refused.contains("round_robin or least_connections"),
            "{refused}"
        );
    }
}
