//! A map from keys to strings with get / put / append (the kv files of the Porcupine
//! corpus). Every key starts as `""`; a get that returns `nil` is read as `""`.
//!
//! [`Kv`] splits a history by key (the keys are independent objects, so the history is
//! linearizable iff each key's part is) and its state is one string. [`KvWholeMap`] checks
//! the whole map as one object, with one state holding every key: much slower, kept to
//! compare with Porcupine's un-partitioned figures and to test the search on big states.
//!
//! Strings grow with every append and are compared at every get, so a state string keeps a
//! polynomial hash that an append extends without rereading the prefix.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::hash::mix;
use super::history::{Input, Key, Operation, Output, Value};
use super::model::{partition_by_key, Model, Partition};

/// A shared string with its hash, cheap to clone, hash and compare.
#[derive(Clone)]
pub struct HashedStr {
    hash: u64,
    text: Arc<str>,
}

const BASE: u64 = 0x0000_0100_0000_01b3;

fn extend_hash(mut hash: u64, text: &str) -> u64 {
    for byte in text.bytes() {
        hash = hash.wrapping_mul(BASE) ^ u64::from(byte);
    }
    hash
}

impl HashedStr {
    /// The empty string, every key's initial value.
    pub fn empty() -> HashedStr {
        HashedStr::new(Arc::from(""))
    }

    /// Wraps a shared string.
    pub fn new(text: Arc<str>) -> HashedStr {
        HashedStr {
            hash: extend_hash(0, &text),
            text,
        }
    }

    /// This string followed by `suffix`.
    pub fn append(&self, suffix: &str) -> HashedStr {
        let mut text = String::with_capacity(self.text.len() + suffix.len());
        text.push_str(&self.text);
        text.push_str(suffix);
        HashedStr {
            hash: extend_hash(self.hash, suffix),
            text: Arc::from(text),
        }
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a get that returned `value` saw this string (`nil` counts as `""`).
    fn matches(&self, value: &Value) -> bool {
        match value {
            Value::Str(text) => **text == *self.text,
            Value::Nil => self.text.is_empty(),
            Value::Int(_) | Value::Other(_) => false,
        }
    }
}

impl PartialEq for HashedStr {
    fn eq(&self, other: &HashedStr) -> bool {
        self.hash == other.hash && (Arc::ptr_eq(&self.text, &other.text) || self.text == other.text)
    }
}

impl Eq for HashedStr {}

impl Hash for HashedStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl fmt::Debug for HashedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.text)
    }
}

fn not_kv(input: &Input) -> Result<(), String> {
    match input {
        Input::Get { .. } | Input::Put { .. } | Input::Append { .. } => Ok(()),
        other => Err(format!(
            "`{}` is not a kv operation (get, put, append): use another --model",
            other.function()
        )),
    }
}

/// One key's step: what both models do to the string of the key an operation is about.
fn step_string(value: &HashedStr, input: &Input, output: Option<&Output>) -> Option<HashedStr> {
    match (input, output) {
        (Input::Get { .. }, None) => Some(value.clone()),
        (Input::Get { .. }, Some(Output::Value(seen))) => {
            value.matches(seen).then(|| value.clone())
        }
        (Input::Put { value: new, .. }, None | Some(Output::Done)) => {
            Some(HashedStr::new(new.clone()))
        }
        (Input::Append { value: suffix, .. }, None | Some(Output::Done)) => {
            Some(value.append(suffix))
        }
        _ => None,
    }
}

/// The kv model, checked key by key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kv;

impl Model for Kv {
    type Input = Input;
    type Output = Output;
    type State = HashedStr;

    fn init(&self) -> HashedStr {
        HashedStr::empty()
    }

    fn step(&self, state: &HashedStr, input: &Input, output: Option<&Output>) -> Option<HashedStr> {
        step_string(state, input, output)
    }

    fn step_unknown(&self, input: &Input, output: Option<&Output>) -> Option<Option<HashedStr>> {
        match (input, output) {
            (Input::Get { .. }, Some(Output::Value(Value::Str(text)))) => {
                Some(Some(HashedStr::new(text.clone())))
            }
            (Input::Get { .. }, Some(Output::Value(Value::Nil))) => Some(Some(HashedStr::empty())),
            (Input::Get { .. }, Some(Output::Value(_))) => None,
            (Input::Put { value, .. }, None | Some(Output::Done)) => {
                Some(Some(HashedStr::new(value.clone())))
            }
            (Input::Get { .. } | Input::Append { .. }, _) => Some(None),
            _ => None,
        }
    }

    fn partition(&self, history: &[Operation<Input, Output>]) -> Vec<Partition> {
        partition_by_key(history, |operation| operation.input.key().map(|key| &**key))
    }

    fn validate(&self, input: &Input) -> Result<(), String> {
        not_kv(input)
    }

    fn is_read_only(&self, input: &Input, _output: Option<&Output>) -> bool {
        matches!(input, Input::Get { .. })
    }

    fn is_noop(&self, input: &Input, output: Option<&Output>) -> bool {
        matches!(input, Input::Get { .. }) && output.is_none()
    }
}

/// The kv model checked as one object: the state is the whole map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvWholeMap;

/// The whole map: the non-empty keys, sorted, with an order-independent hash.
#[derive(Clone, PartialEq, Eq)]
pub struct KvMap {
    hash: u64,
    entries: Arc<Vec<(Key, HashedStr)>>,
}

impl Hash for KvMap {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl fmt::Debug for KvMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(key, value)| (key, value)))
            .finish()
    }
}

fn entry_hash(key: &str, value: &HashedStr) -> u64 {
    mix(extend_hash(value.hash, key) ^ 0x9e37_79b9_7f4a_7c15)
}

impl Model for KvWholeMap {
    type Input = Input;
    type Output = Output;
    type State = KvMap;

    fn init(&self) -> KvMap {
        KvMap {
            hash: 0,
            entries: Arc::new(Vec::new()),
        }
    }

    fn step(&self, state: &KvMap, input: &Input, output: Option<&Output>) -> Option<KvMap> {
        let key = input.key()?;
        let slot = state.entries.binary_search_by(|(k, _)| (**k).cmp(key));
        let empty = HashedStr::empty();
        let old = match slot {
            Ok(index) => &state.entries[index].1,
            Err(_) => &empty,
        };
        let new = step_string(old, input, output)?;
        if new == *old {
            return Some(state.clone());
        }
        let mut hash = state.hash;
        let mut entries = Vec::clone(&state.entries);
        match slot {
            Ok(index) => {
                hash = hash.wrapping_sub(entry_hash(key, old));
                if new.text.is_empty() {
                    entries.remove(index);
                } else {
                    hash = hash.wrapping_add(entry_hash(key, &new));
                    entries[index].1 = new;
                }
            }
            Err(index) => {
                hash = hash.wrapping_add(entry_hash(key, &new));
                entries.insert(index, (key.clone(), new));
            }
        }
        Some(KvMap {
            hash,
            entries: Arc::new(entries),
        })
    }

    fn validate(&self, input: &Input) -> Result<(), String> {
        not_kv(input)
    }

    fn is_read_only(&self, input: &Input, _output: Option<&Output>) -> bool {
        matches!(input, Input::Get { .. })
    }

    fn is_noop(&self, input: &Input, output: Option<&Output>) -> bool {
        matches!(input, Input::Get { .. }) && output.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{history, ops};
    use super::super::{check, Budget, Verdict};
    use super::*;

    fn both(spec: &str) -> (Verdict, Verdict) {
        let events = history(&ops(spec));
        (
            check(&Kv, &events, Budget::unlimited()).verdict,
            check(&KvWholeMap, &events, Budget::unlimited()).verdict,
        )
    }

    fn assert_linearizable(spec: &str) {
        let (per_key, whole) = both(spec);
        assert_eq!(per_key, Verdict::Linearizable, "per key: {spec}");
        assert_eq!(whole, Verdict::Linearizable, "whole map: {spec}");
    }

    fn assert_violation(spec: &str) {
        let (per_key, whole) = both(spec);
        assert!(per_key.is_violation(), "per key: {spec}: {per_key:?}");
        assert!(whole.is_violation(), "whole map: {spec}: {whole:?}");
    }

    #[test]
    fn keys_start_empty_and_appends_concatenate() {
        assert_linearizable("0 get @a | 0 ok \"\" | 0 append x @a | 0 ok | 0 append y @a | 0 ok | 1 get @a | 1 ok xy");
        assert_linearizable("0 get @a | 0 ok nil");
        assert_violation("0 append x @a | 0 ok | 0 append y @a | 0 ok | 1 get @a | 1 ok yx");
    }

    #[test]
    fn put_replaces() {
        assert_linearizable("0 append x @a | 0 ok | 0 put z @a | 0 ok | 1 get @a | 1 ok z");
        assert_violation("0 append x @a | 0 ok | 0 put z @a | 0 ok | 1 get @a | 1 ok zx");
    }

    #[test]
    fn concurrent_appends_may_land_in_either_order() {
        assert_linearizable("0 append x @a | 1 append y @a | 0 ok | 1 ok | 2 get @a | 2 ok yx");
        assert_linearizable("0 append x @a | 1 append y @a | 0 ok | 1 ok | 2 get @a | 2 ok xy");
    }

    #[test]
    fn stale_get_after_completed_append_is_sequentially_consistent_but_not_linearizable() {
        assert_violation("0 append x @a | 0 ok | 1 get @a | 1 ok \"\"");
    }

    #[test]
    fn info_append_may_or_may_not_take_effect() {
        assert_linearizable("0 append x @a | 0 info | 1 get @a | 1 ok x");
        assert_linearizable("0 append x @a | 0 info | 1 get @a | 1 ok \"\"");
        assert_violation("0 append x @a | 0 info | 1 get @a | 1 ok x | 1 get @a | 1 ok \"\"");
    }

    #[test]
    fn a_violation_names_its_key() {
        let events = history(&ops("0 put v @a | 0 ok | 1 get @b | 1 ok v"));
        match check(&Kv, &events, Budget::unlimited()).verdict {
            Verdict::NotLinearizable(evidence) => assert_eq!(evidence.key.as_deref(), Some("b")),
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn whole_map_state_ignores_keys_holding_the_empty_string() {
        let model = KvWholeMap;
        let start = model.init();
        let input = Input::Put {
            key: "a".into(),
            value: "".into(),
        };
        let after = model.step(&start, &input, Some(&Output::Done));
        assert_eq!(after, Some(start));
    }

    #[test]
    fn register_operations_are_rejected_as_unsupported_not_as_violations() {
        let events = history(&ops("0 w 1 | 0 ok"));
        assert!(matches!(
            check(&Kv, &events, Budget::unlimited()).verdict,
            Verdict::Unknown { .. }
        ));
    }
}
