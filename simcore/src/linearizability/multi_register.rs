//! Several registers read and written by transactions (Knossos's `multi-register`): an
//! operation is `:txn` with a value `[[:r k v] [:w k v] ...]`, applied in order, atomically.
//!
//! As in Knossos, a read micro-op whose value is `nil` is always legal (the value is not
//! known: invokes carry `nil` reads, and so do transactions that crashed), a read of `v`
//! must see the register's current value, reads within a transaction see its own earlier
//! writes, and a register never written holds the initial value (`nil` by default, or one
//! per key). The state is the map of registers that differ from their initial value, with
//! a flag for "nothing is known" (the start of an evidence window): there a register not in
//! the map holds whatever its first read says.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::history::{Input, MicroOp, Output, Value};
use super::model::Model;

/// The multi-register model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MultiRegister {
    /// Every register's initial value unless `initial_per_key` names it.
    pub initial: Value,
    /// Initial values of particular registers (`--initial-value '{:x 0}'`).
    pub initial_per_key: BTreeMap<Value, Value>,
}

/// The registers: those whose value is known to differ from the initial one, sorted by key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Registers {
    /// Whether registers not listed hold their initial value (else: unknown).
    known: bool,
    values: Arc<Vec<(Value, Value)>>,
}

impl MultiRegister {
    fn initial_of(&self, key: &Value) -> &Value {
        self.initial_per_key.get(key).unwrap_or(&self.initial)
    }

    fn apply(&self, state: &Registers, ops: &[MicroOp]) -> Option<Registers> {
        let mut values: Vec<(Value, Value)> = Vec::clone(&state.values);
        let mut changed = false;
        for op in ops {
            let slot = values.binary_search_by(|(key, _)| key.cmp(&op.key));
            if op.write {
                match slot {
                    Ok(index) => values[index].1 = op.value.clone(),
                    Err(index) => values.insert(index, (op.key.clone(), op.value.clone())),
                }
                changed = true;
                continue;
            }
            if op.value == Value::Nil {
                continue;
            }
            match slot {
                Ok(index) if values[index].1 != op.value => return None,
                Ok(_) => {}
                Err(_) if state.known && *self.initial_of(&op.key) != op.value => return None,
                Err(_) if state.known => {}
                Err(index) => {
                    // Unknown so far: the read says what it held.
                    values.insert(index, (op.key.clone(), op.value.clone()));
                    changed = true;
                }
            }
        }
        if !changed {
            return Some(state.clone());
        }
        // Keep the state canonical: a known register at its initial value is not listed.
        if state.known {
            values.retain(|(key, value)| value != self.initial_of(key));
        }
        Some(Registers {
            known: state.known,
            values: Arc::new(values),
        })
    }
}

fn ops_of<'a>(input: &'a Input, output: Option<&'a Output>) -> Option<&'a [MicroOp]> {
    match (input, output) {
        (_, Some(Output::Txn(ops))) => Some(ops),
        (Input::Txn { ops }, None | Some(Output::Done)) => Some(ops),
        _ => None,
    }
}

impl Model for MultiRegister {
    type Input = Input;
    type Output = Output;
    type State = Registers;

    fn init(&self) -> Registers {
        Registers {
            known: true,
            values: Arc::new(Vec::new()),
        }
    }

    fn step(&self, state: &Registers, input: &Input, output: Option<&Output>) -> Option<Registers> {
        self.apply(state, ops_of(input, output)?)
    }

    fn step_unknown(&self, input: &Input, output: Option<&Output>) -> Option<Option<Registers>> {
        let unknown = Registers {
            known: false,
            values: Arc::new(Vec::new()),
        };
        self.apply(&unknown, ops_of(input, output)?).map(Some)
    }

    fn validate(&self, input: &Input) -> Result<(), String> {
        match input {
            Input::Txn { .. } => Ok(()),
            other => Err(format!(
                "`{}` is not a multi-register operation (txn): use another --model",
                other.function()
            )),
        }
    }

    fn is_read_only(&self, input: &Input, output: Option<&Output>) -> bool {
        ops_of(input, output).is_some_and(|ops| ops.iter().all(|op| !op.write))
    }

    fn is_noop(&self, input: &Input, output: Option<&Output>) -> bool {
        ops_of(input, output)
            .is_some_and(|ops| ops.iter().all(|op| !op.write && op.value == Value::Nil))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{check, parse_history, Budget, Verdict};
    use super::*;

    fn verdict(model: &MultiRegister, text: &str) -> Verdict {
        let history = parse_history(text).unwrap_or_else(|error| panic!("{error}"));
        check(model, &history.operations, Budget::unlimited()).verdict
    }

    #[test]
    fn a_transaction_sees_earlier_writes_and_its_own() {
        // t1 writes x=1 y=2; t2 (after it) reads both and writes x=3 then reads x=3.
        let text = "\
{:process 0, :type :invoke, :f :txn, :value [[:w :x 1] [:w :y 2]]}
{:process 0, :type :ok, :f :txn, :value [[:w :x 1] [:w :y 2]]}
{:process 1, :type :invoke, :f :txn, :value [[:r :x nil] [:r :y nil] [:w :x 3] [:r :x nil]]}
{:process 1, :type :ok, :f :txn, :value [[:r :x 1] [:r :y 2] [:w :x 3] [:r :x 3]]}
";
        assert_eq!(
            verdict(&MultiRegister::default(), text),
            Verdict::Linearizable
        );
    }

    #[test]
    fn a_torn_read_is_not_linearizable() {
        // The write of x and y is one transaction: a later read seeing the new x with the
        // old (initial nil → here 0) y sees half of it.
        let text = "\
[{:process 0, :type :invoke, :f :txn, :value [[:w :x 1] [:w :y 1]]}
 {:process 0, :type :ok, :f :txn, :value [[:w :x 1] [:w :y 1]]}
 {:process 1, :type :invoke, :f :txn, :value [[:r :x nil] [:r :y nil]]}
 {:process 1, :type :ok, :f :txn, :value [[:r :x 1] [:r :y 0]]}]
";
        let model = MultiRegister {
            initial: Value::Int(0),
            ..MultiRegister::default()
        };
        assert!(verdict(&model, text).is_violation());
    }

    #[test]
    fn initial_values_per_key_and_nil_reads() {
        // Reading y=5 before any write is legal only if y starts at 5; a nil read is
        // always legal.
        let text = "\
{:process 0, :type :invoke, :f :txn, :value [[:r :y nil] [:r :x nil]]}
{:process 0, :type :ok, :f :txn, :value [[:r :y 5] [:r :x nil]]}
";
        assert!(verdict(&MultiRegister::default(), text).is_violation());
        let model = MultiRegister {
            initial_per_key: [(Value::Other(":y".into()), Value::Int(5))].into(),
            ..MultiRegister::default()
        };
        assert_eq!(verdict(&model, text), Verdict::Linearizable);
    }

    #[test]
    fn a_crashed_transaction_may_have_happened() {
        // 0's write crashed (:info); 1 later reads its value: it took effect.
        let text = "\
{:process 0, :type :invoke, :f :txn, :value [[:w :x 7]]}
{:process 0, :type :info, :f :txn, :value [[:w :x 7]]}
{:process 1, :type :invoke, :f :txn, :value [[:r :x nil]]}
{:process 1, :type :ok, :f :txn, :value [[:r :x 7]]}
";
        assert_eq!(
            verdict(&MultiRegister::default(), text),
            Verdict::Linearizable
        );
    }
}
