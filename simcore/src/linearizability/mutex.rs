//! A mutex (Knossos's `mutex`): `acquire` takes it, `release` gives it back; it is held by
//! at most one process at a time.
//!
//! As in Knossos, the state is only "held" or "free", not who holds it: a Jepsen process
//! that crashes while holding a lock is replaced by a new process number, so the release
//! may legitimately come from another number. An acquire while held or a release while
//! free is refused. `:fail` means the operation did not happen (it is dropped when loading);
//! `:info` means it may have happened at any point after its call, or not at all.

use super::history::{Input, Output};
use super::model::Model;

/// The mutex model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mutex;

impl Model for Mutex {
    type Input = Input;
    type Output = Output;
    /// Whether the mutex is held.
    type State = bool;

    fn init(&self) -> bool {
        false
    }

    fn step(&self, held: &bool, input: &Input, _output: Option<&Output>) -> Option<bool> {
        match input {
            Input::Acquire => (!held).then_some(true),
            Input::Release => held.then_some(false),
            _ => None,
        }
    }

    fn step_unknown(&self, input: &Input, _output: Option<&Output>) -> Option<Option<bool>> {
        match input {
            Input::Acquire => Some(Some(true)),
            Input::Release => Some(Some(false)),
            _ => None,
        }
    }

    fn validate(&self, input: &Input) -> Result<(), String> {
        match input {
            Input::Acquire | Input::Release => Ok(()),
            other => Err(format!(
                "`{}` is not a mutex operation (acquire, release): use another --model",
                other.function()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{history, ops};
    use super::super::{check, Budget, Verdict};
    use super::*;

    fn verdict(spec: &str) -> Verdict {
        check(&Mutex, &history(&ops(spec)), Budget::unlimited()).verdict
    }

    #[test]
    fn acquire_release_in_turn_is_linearizable() {
        assert_eq!(
            verdict("0 acquire | 0 ok | 0 release | 0 ok | 1 acquire | 1 ok"),
            Verdict::Linearizable
        );
    }

    #[test]
    fn two_holders_at_once_are_not() {
        // 0 holds the lock (acquired, never released) when 1's acquire is called and
        // returns: no order puts a release between them.
        assert!(verdict("0 acquire | 0 ok | 1 acquire | 1 ok").is_violation());
    }

    #[test]
    fn overlapping_release_lets_the_next_acquire_in() {
        // 0's release runs while 1 acquires: the release may take effect first.
        assert_eq!(
            verdict("0 acquire | 0 ok | 0 release | 1 acquire | 1 ok | 0 ok"),
            Verdict::Linearizable
        );
    }

    #[test]
    fn release_of_a_free_mutex_is_not() {
        assert!(verdict("0 release | 0 ok").is_violation());
    }

    #[test]
    fn a_crashed_acquire_may_never_have_happened() {
        // 0's acquire timed out (:info): if it took effect, 1 could not acquire; it may
        // never have, so the history is fine.
        assert_eq!(
            verdict("0 acquire | 0 info | 1 acquire | 1 ok"),
            Verdict::Linearizable
        );
        // ...but it may also explain a later release by another process number.
        assert_eq!(
            verdict("0 acquire | 0 info | 1 release | 1 ok"),
            Verdict::Linearizable
        );
    }
}
