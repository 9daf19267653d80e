//! The sequential specification a history is checked against.
//!
//! A model is a deterministic state machine: a start state and a `step` that either accepts
//! an operation (its input and, when known, its output) in a state and gives the next state,
//! or rejects it. Everything else has defaults, so a new model is one small file: see
//! `register.rs` (under 100 lines before its tests) for the pattern.

use std::fmt;
use std::hash::Hash;

use super::history::Operation;

/// A sequential specification: the object a concurrent history must look like.
///
/// `step` must be a pure function of its arguments: the search calls it many times on the
/// same state, in any order and from several threads (one per partition).
pub trait Model: Sync {
    /// What a client asks (shown in evidence through `Display`).
    type Input: fmt::Display + Sync;
    /// What a client is told (shown in evidence through `Display`).
    type Output: fmt::Display + Sync;
    /// The object's state. The search memoizes (set of operations done, state) pairs, so
    /// equality and hashing must be exact and should be cheap: share big values (`Arc`) and
    /// cache their hashes rather than clone and rehash them.
    type State: Clone + Eq + Hash + fmt::Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Applies one operation: `Some(next state)` if the object in `state` may do `input` and
    /// answer `output` (any answer when `output` is `None`), `None` if it may not.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// Splits a history into independent sub-histories (P-compositionality): the history is
    /// linearizable iff every part is, so each part is searched alone. The default keeps the
    /// history whole. Parts must cover every operation exactly once.
    fn partition(&self, history: &[Operation<Self::Input, Self::Output>]) -> Vec<Partition> {
        vec![Partition {
            key: None,
            operations: (0..history.len()).collect(),
        }]
    }

    /// Says why this model cannot check an operation at all (an operation of another
    /// model), so that a mismatch is reported as bad input rather than as a violation.
    fn validate(&self, _input: &Self::Input) -> Result<(), String> {
        Ok(())
    }

    /// Whether an operation leaves the state unchanged in every state that accepts it (a
    /// read, a failed compare-and-set). The search then places such an operation as soon as
    /// it is legal, without trying other orders: moving it earlier changes no state and
    /// breaks no real-time constraint, so nothing is lost. This removes most branching on
    /// read-heavy histories. Saying `false` is always safe; saying `true` wrongly is not.
    fn is_read_only(&self, _input: &Self::Input, _output: Option<&Self::Output>) -> bool {
        false
    }

    /// The operation applied to a state nobody knows (the start of an evidence window, see
    /// `window.rs`): `None` if no state accepts it, `Some(Some(state))` if every state that
    /// accepts it ends in `state` (a write, a read that saw the value), `Some(None)` if the
    /// state stays unknown. It must over-approximate (accept whenever some state would), or
    /// a window could be called non-linearizable wrongly; the default, "accepted, still
    /// unknown", always does.
    fn step_unknown(
        &self,
        _input: &Self::Input,
        _output: Option<&Self::Output>,
    ) -> Option<Option<Self::State>> {
        Some(None)
    }

    /// Whether an operation is legal in every state and changes nothing (a read whose output
    /// is unknown); the checker drops such operations before searching. Only a speed-up.
    fn is_noop(&self, _input: &Self::Input, _output: Option<&Self::Output>) -> bool {
        false
    }
}

/// One independent sub-history: the operations (indices into the checked history) of one
/// object, and that object's key when there is one (shown in evidence).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// The key of the object this part is about, if the history has several.
    pub key: Option<String>,
    /// Indices of the part's operations in the history, in increasing order.
    pub operations: Vec<usize>,
}

/// Groups operations by key, in key order; the operations without a key form one more
/// part (key `None`) placed first. The partition function of both built-in models.
pub(crate) fn partition_by_key<'a, T: 'a>(
    history: &'a [T],
    key_of: impl Fn(&'a T) -> Option<&'a str>,
) -> Vec<Partition> {
    let mut keyless = Vec::new();
    let mut by_key: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (index, operation) in history.iter().enumerate() {
        match key_of(operation) {
            Some(key) => by_key.entry(key).or_default().push(index),
            None => keyless.push(index),
        }
    }
    let mut parts = Vec::with_capacity(by_key.len() + 1);
    if !keyless.is_empty() || by_key.is_empty() {
        parts.push(Partition {
            key: None,
            operations: keyless,
        });
    }
    parts.extend(by_key.into_iter().map(|(key, operations)| Partition {
        key: Some(key.to_string()),
        operations,
    }));
    parts
}
