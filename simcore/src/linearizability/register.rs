//! A read / write / compare-and-set register (Jepsen's `cas-register`), one per key.
//!
//! A history without keys is one register (the etcd corpus); a history whose operations
//! carry keys is a map of independent registers (our simulator's per-key histories), split
//! by key and checked key by key. A `cas` that failed (`Output::Cas(false)`) says the
//! register did not hold the expected value at the moment it took effect, as in Porcupine's
//! etcd model; a `cas` of unknown outcome swaps exactly when the value matches.
//!
//! [`Register::knossos`] is Knossos's `cas-register` instead: a read that returned `nil`
//! says nothing (Knossos reads `nil` as "value unknown"), and a failed `cas` did not happen
//! (Knossos drops failed operations), rather than "the value was not the expected one".

use super::history::{Input, Operation, Output, Value};
use super::model::{partition_by_key, Model, Partition};

/// The register model. `initial` is the value before any write (`Value::Nil` for Jepsen's
/// "no value", as in the etcd corpus).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Register {
    /// The value every register holds before its first write.
    pub initial: Value,
    /// Knossos's reading of `nil` reads and failed CASes (see the module doc).
    pub knossos: bool,
}

impl Register {
    /// Registers that start as `initial` (Porcupine's reading).
    pub fn new(initial: Value) -> Register {
        Register {
            initial,
            knossos: false,
        }
    }

    /// Knossos's `cas-register` starting as `initial`.
    pub fn knossos(initial: Value) -> Register {
        Register {
            initial,
            knossos: true,
        }
    }

    /// Whether the output says nothing about the state, as Knossos reads it.
    fn says_nothing(&self, output: Option<&Output>) -> bool {
        self.knossos && matches!(output, Some(Output::Value(Value::Nil) | Output::Cas(false)))
    }
}

impl Default for Register {
    /// Registers that start empty (`nil`).
    fn default() -> Register {
        Register::new(Value::Nil)
    }
}

impl Model for Register {
    type Input = Input;
    type Output = Output;
    type State = Value;

    fn init(&self) -> Value {
        self.initial.clone()
    }

    fn step(&self, state: &Value, input: &Input, output: Option<&Output>) -> Option<Value> {
        if self.says_nothing(output) {
            return Some(state.clone());
        }
        match (input, output) {
            (Input::Read { .. }, None) => Some(state.clone()),
            (Input::Read { .. }, Some(Output::Value(seen))) => {
                (seen == state).then(|| state.clone())
            }
            (Input::Write { value, .. }, None | Some(Output::Done)) => Some(value.clone()),
            (Input::Cas { expected, new, .. }, None) => {
                Some(if state == expected { new } else { state }.clone())
            }
            (Input::Cas { expected, new, .. }, Some(Output::Cas(true))) => {
                (state == expected).then(|| new.clone())
            }
            (Input::Cas { expected, .. }, Some(Output::Cas(false))) => {
                (state != expected).then(|| state.clone())
            }
            _ => None,
        }
    }

    fn step_unknown(&self, input: &Input, output: Option<&Output>) -> Option<Option<Value>> {
        if self.says_nothing(output) {
            return Some(None);
        }
        match (input, output) {
            (Input::Read { .. }, Some(Output::Value(seen))) => Some(Some(seen.clone())),
            (Input::Write { value, .. }, None | Some(Output::Done)) => Some(Some(value.clone())),
            (Input::Cas { new, .. }, Some(Output::Cas(true))) => Some(Some(new.clone())),
            (Input::Read { .. } | Input::Cas { .. }, _) => Some(None),
            _ => None,
        }
    }

    fn partition(&self, history: &[Operation<Input, Output>]) -> Vec<Partition> {
        partition_by_key(history, |operation| operation.input.key().map(|key| &**key))
    }

    fn validate(&self, input: &Input) -> Result<(), String> {
        if input.is_register_operation() {
            Ok(())
        } else {
            Err(format!(
                "`{}` is not a register operation (read, write, cas): use another --model",
                input.function()
            ))
        }
    }

    fn is_read_only(&self, input: &Input, output: Option<&Output>) -> bool {
        if self.says_nothing(output) {
            return true;
        }
        match (input, output) {
            (Input::Read { .. }, _) => true,
            (Input::Cas { .. }, Some(Output::Cas(false))) => true,
            (Input::Cas { expected, new, .. }, Some(Output::Cas(true))) => expected == new,
            _ => false,
        }
    }

    fn is_noop(&self, input: &Input, output: Option<&Output>) -> bool {
        (matches!(input, Input::Read { .. }) && output.is_none()) || self.says_nothing(output)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{history, ops, Event};
    use super::super::{check, Budget, Verdict};
    use super::*;

    fn verdict(register: &Register, events: &[Event]) -> Verdict {
        check(register, &history(events), Budget::unlimited()).verdict
    }

    #[test]
    fn sequential_write_then_read_is_linearizable() {
        let events = ops("0 w 1 | 0 ok | 1 r | 1 ok 1");
        assert_eq!(
            verdict(&Register::default(), &events),
            Verdict::Linearizable
        );
    }

    #[test]
    fn read_of_a_value_nobody_wrote_is_not_linearizable() {
        let events = ops("0 w 1 | 0 ok | 1 r | 1 ok 2");
        assert!(verdict(&Register::default(), &events).is_violation());
    }

    #[test]
    fn initial_value_is_configurable_and_nil_by_default() {
        let events = ops("0 r | 0 ok 7");
        assert!(verdict(&Register::default(), &events).is_violation());
        assert_eq!(
            verdict(&Register::new(Value::Int(7)), &events),
            Verdict::Linearizable
        );
        let nil_read = ops("0 r | 0 ok nil");
        assert_eq!(
            verdict(&Register::default(), &nil_read),
            Verdict::Linearizable
        );
    }

    #[test]
    fn concurrent_reads_may_see_old_and_new_value_in_either_order_of_return() {
        // w1 overlaps both reads, so one read may precede it and one follow it.
        let events = ops("0 w 1 | 1 r | 2 r | 1 ok nil | 2 ok 1 | 0 ok");
        assert_eq!(
            verdict(&Register::default(), &events),
            Verdict::Linearizable
        );
    }

    #[test]
    fn stale_read_after_completed_write_is_sequentially_consistent_but_not_linearizable() {
        // Client 1 reads nil after client 0's write of 1 has returned. Ordering the read
        // first would be a legal sequential order (sequential consistency only keeps each
        // client's own order), but it breaks real time: the write returned before the read
        // was called.
        let events = ops("0 w 1 | 0 ok | 1 r | 1 ok nil");
        assert!(verdict(&Register::default(), &events).is_violation());
        // The same operations overlapping in time are fine.
        let overlapping = ops("0 w 1 | 1 r | 0 ok | 1 ok nil");
        assert_eq!(
            verdict(&Register::default(), &overlapping),
            Verdict::Linearizable
        );
    }

    #[test]
    fn info_write_may_explain_a_later_read() {
        // The write timed out (:info) but a later read sees it: it took effect.
        let events = ops("0 w 1 | 0 info | 1 r | 1 ok 1");
        assert_eq!(
            verdict(&Register::default(), &events),
            Verdict::Linearizable
        );
    }

    #[test]
    fn info_write_may_never_take_effect() {
        // The write timed out and every later read still sees the old value.
        let events = ops("0 w 1 | 0 info | 1 r | 1 ok nil | 1 r | 1 ok nil");
        assert_eq!(
            verdict(&Register::default(), &events),
            Verdict::Linearizable
        );
    }

    #[test]
    fn info_write_cannot_take_effect_before_its_call() {
        let events = ops("1 r | 1 ok 1 | 0 w 1 | 0 info");
        assert!(verdict(&Register::default(), &events).is_violation());
    }

    #[test]
    fn info_write_takes_effect_once_so_values_cannot_flip_back() {
        // Once a read saw 1 and a later read saw 2, the timed-out write of 1 cannot be
        // placed after the write of 2 and also explain the first read.
        let events = ops("0 w 1 | 0 info | 2 w 2 | 2 ok | 1 r | 1 ok 1 | 1 r | 1 ok 2");
        assert!(verdict(&Register::default(), &events).is_violation());
    }

    #[test]
    fn cas_success_and_failure_follow_the_register_value() {
        let ok = ops("0 w 1 | 0 ok | 1 cas 1 2 | 1 ok | 2 r | 2 ok 2");
        assert_eq!(verdict(&Register::default(), &ok), Verdict::Linearizable);
        let failed_but_should_succeed = ops("0 w 1 | 0 ok | 1 cas 1 2 | 1 fail");
        assert!(verdict(&Register::default(), &failed_but_should_succeed).is_violation());
        let failed_correctly = ops("0 w 1 | 0 ok | 1 cas 3 2 | 1 fail | 2 r | 2 ok 1");
        assert_eq!(
            verdict(&Register::default(), &failed_correctly),
            Verdict::Linearizable
        );
        let succeeded_wrongly = ops("0 w 1 | 0 ok | 1 cas 3 2 | 1 ok");
        assert!(verdict(&Register::default(), &succeeded_wrongly).is_violation());
    }

    #[test]
    fn info_cas_swaps_only_if_the_value_matches() {
        let applied = ops("0 w 1 | 0 ok | 1 cas 1 2 | 1 info | 2 r | 2 ok 2");
        assert_eq!(
            verdict(&Register::default(), &applied),
            Verdict::Linearizable
        );
        let impossible = ops("0 w 1 | 0 ok | 1 cas 3 2 | 1 info | 2 r | 2 ok 2");
        assert!(verdict(&Register::default(), &impossible).is_violation());
    }

    #[test]
    fn failed_read_has_unknown_output_and_is_dropped() {
        let events = ops("0 w 1 | 0 ok | 1 r | 1 fail | 2 r | 2 ok 1");
        assert_eq!(
            verdict(&Register::default(), &events),
            Verdict::Linearizable
        );
    }

    #[test]
    fn registers_under_different_keys_are_independent() {
        let events = ops("0 w 1 @a | 0 ok | 1 r @b | 1 ok nil | 1 r @a | 1 ok 1");
        assert_eq!(
            verdict(&Register::default(), &events),
            Verdict::Linearizable
        );
        let bad = ops("0 w 1 @a | 0 ok | 1 r @b | 1 ok 1");
        match verdict(&Register::default(), &bad) {
            Verdict::NotLinearizable(evidence) => assert_eq!(evidence.key.as_deref(), Some("b")),
            other => panic!("expected a violation on key b, got {other:?}"),
        }
    }

    #[test]
    fn kv_operations_are_rejected_as_unsupported_not_as_violations() {
        let events = ops("0 get @a | 0 ok \"\"");
        assert!(matches!(
            verdict(&Register::default(), &events),
            Verdict::Unknown { .. }
        ));
    }
}
