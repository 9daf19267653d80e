//! Operations and the Jepsen vocabulary of register and key-value histories.
//!
//! An [`Operation`] is one client call seen from outside: who called it, what it asked
//! ([`Operation::input`]), what came back ([`Operation::output`], `None` when nobody knows)
//! and when it was called and returned ([`Operation::ret`], `None` when it never did). It is
//! generic so that a new model can bring its own input and output types; the two built-in
//! models and the file formats share the vocabulary below ([`Input`], [`Output`], [`Value`]),
//! which is Jepsen's: `read`/`write`/`cas` on registers, `get`/`put`/`append` on string maps.

use std::fmt;
use std::sync::Arc;

/// A key of a key-value or per-key register history. Shared, because the checker clones
/// keys and values into model states far more often than it creates them.
pub type Key = Arc<str>;

/// One client operation: its call, its return (if any) and what it asked and saw.
///
/// Times are plain `u64`s (nanoseconds of simulated time, or the event index of a log line):
/// only their order matters. Two events at the same time are taken as concurrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client (Jepsen "process") that issued the operation; only shown in evidence.
    pub client: u64,
    /// What the client asked for.
    pub input: I,
    /// What the client was told; `None` when unknown (timed out, or a failed read), in which
    /// case any output is accepted.
    pub output: Option<O>,
    /// When the call was made.
    pub call: u64,
    /// When the answer arrived; `None` for an indeterminate operation (Jepsen `:info`): it may
    /// take effect at any point after its call, or never.
    pub ret: Option<u64>,
}

impl<I, O> Operation<I, O> {
    /// The return time, with an open operation returning after everything else.
    pub fn ret_or_infinity(&self) -> u64 {
        self.ret.unwrap_or(u64::MAX)
    }
}

/// A register value: Jepsen's `nil`, an integer (the etcd corpus) or a string (our
/// simulator's values).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    /// No value: a register never written.
    #[default]
    Nil,
    /// An integer value.
    Int(i64),
    /// A string value.
    Str(Arc<str>),
    /// Any other EDN value (a keyword, a float, a vector, a map...), as its canonical EDN
    /// text: two values are equal when Clojure's `=` says so (set and map order ignored).
    Other(Arc<str>),
}

impl Value {
    /// A string value.
    pub fn str(text: &str) -> Value {
        Value::Str(Arc::from(text))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Int(number) => write!(f, "{number}"),
            Value::Str(text) => write_quoted(f, text),
            Value::Other(text) => f.write_str(text),
        }
    }
}

/// Writes `text` as an EDN string literal (quotes, with `"`, `\` and control characters
/// escaped), so that the EDN writer and evidence messages agree.
pub(crate) fn write_quoted(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    for character in text.chars() {
        match character {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\t' => out.write_str("\\t")?,
            '\r' => out.write_str("\\r")?,
            other => out.write_char(other)?,
        }
    }
    out.write_char('"')
}

/// What a client asked for, in Jepsen's vocabulary. `read`/`write`/`cas` are register
/// operations (with a key when the history holds one register per key); `get`/`put`/`append`
/// are operations on a map from keys to strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// Read the register.
    Read {
        /// The register's key, if the history has several registers.
        key: Option<Key>,
    },
    /// Set the register to `value`.
    Write {
        /// The register's key, if the history has several registers.
        key: Option<Key>,
        /// The value written.
        value: Value,
    },
    /// Compare-and-set: if the register holds `expected`, set it to `new`.
    Cas {
        /// The register's key, if the history has several registers.
        key: Option<Key>,
        /// The value the register must hold for the swap to happen.
        expected: Value,
        /// The value stored when it does.
        new: Value,
    },
    /// Read the string stored under `key`.
    Get {
        /// The key read.
        key: Key,
    },
    /// Replace the string stored under `key`.
    Put {
        /// The key written.
        key: Key,
        /// The new string.
        value: Arc<str>,
    },
    /// Append to the string stored under `key`.
    Append {
        /// The key written.
        key: Key,
        /// The suffix appended.
        value: Arc<str>,
    },
    /// Add an element to a set (Jepsen's set, Maelstrom's broadcast).
    Add {
        /// The element.
        value: Value,
    },
    /// Take the mutex.
    Acquire,
    /// Give the mutex back.
    Release,
    /// A transaction of reads and writes over several registers (Knossos's multi-register
    /// `:txn`); a read's value here is what the client was told, `nil` when unknown.
    Txn {
        /// The micro-operations, in order.
        ops: Arc<[MicroOp]>,
    },
}

/// One read or write inside a [`Input::Txn`]: `[:r k v]` or `[:w k v]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MicroOp {
    /// Whether it writes (`:w`) rather than reads (`:r`).
    pub write: bool,
    /// The register.
    pub key: Value,
    /// The value written, or the value read (`nil`: unknown, any value is fine).
    pub value: Value,
}

impl fmt::Display for MicroOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.write { "w" } else { "r" };
        write!(f, "[:{kind} {} {}]", self.key, self.value)
    }
}

fn write_txn(f: &mut fmt::Formatter<'_>, ops: &[MicroOp]) -> fmt::Result {
    f.write_str("[")?;
    for (position, op) in ops.iter().enumerate() {
        if position > 0 {
            f.write_str(" ")?;
        }
        write!(f, "{op}")?;
    }
    f.write_str("]")
}

impl Input {
    /// The key the operation is about, if any.
    pub fn key(&self) -> Option<&Key> {
        match self {
            Input::Read { key } | Input::Write { key, .. } | Input::Cas { key, .. } => key.as_ref(),
            Input::Get { key } | Input::Put { key, .. } | Input::Append { key, .. } => Some(key),
            Input::Add { .. } | Input::Acquire | Input::Release | Input::Txn { .. } => None,
        }
    }

    /// Jepsen's name of the operation (`:f`), without the colon.
    pub fn function(&self) -> &'static str {
        match self {
            Input::Read { .. } => "read",
            Input::Write { .. } => "write",
            Input::Cas { .. } => "cas",
            Input::Get { .. } => "get",
            Input::Put { .. } => "put",
            Input::Append { .. } => "append",
            Input::Add { .. } => "add",
            Input::Acquire => "acquire",
            Input::Release => "release",
            Input::Txn { .. } => "txn",
        }
    }

    /// Whether this is one of the register operations (`read`, `write`, `cas`).
    pub fn is_register_operation(&self) -> bool {
        matches!(
            self,
            Input::Read { .. } | Input::Write { .. } | Input::Cas { .. }
        )
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(key) = self.key() {
            f.write_str("[")?;
            write_quoted(f, key)?;
            f.write_str("] ")?;
        }
        match self {
            Input::Read { .. } => f.write_str("read"),
            Input::Write { value, .. } => write!(f, "write {value}"),
            Input::Cas { expected, new, .. } => write!(f, "cas {expected} -> {new}"),
            Input::Get { .. } => f.write_str("get"),
            Input::Put { value, .. } => {
                f.write_str("put ")?;
                write_quoted(f, value)
            }
            Input::Append { value, .. } => {
                f.write_str("append ")?;
                write_quoted(f, value)
            }
            Input::Add { value } => write!(f, "add {value}"),
            Input::Acquire => f.write_str("acquire"),
            Input::Release => f.write_str("release"),
            Input::Txn { ops } => {
                f.write_str("txn ")?;
                write_txn(f, ops)
            }
        }
    }
}

/// What a client was told, in Jepsen's vocabulary.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// A read or get returned this value (`nil` for a register never written).
    Value(Value),
    /// A write, put or append completed.
    Done,
    /// A compare-and-set succeeded (`true`) or definitely did not swap (`false`: the
    /// register did not hold the expected value when it took effect).
    Cas(bool),
    /// A transaction completed; its micro-operations with the values its reads saw.
    Txn(Arc<[MicroOp]>),
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Value(value) => write!(f, "{value}"),
            Output::Done => f.write_str("ok"),
            Output::Cas(true) => f.write_str("ok"),
            Output::Cas(false) => f.write_str("fail"),
            Output::Txn(ops) => write_txn(f, ops),
        }
    }
}

/// An operation in the Jepsen vocabulary: what the file formats read and write and what the
/// built-in models check.
pub type JepsenOperation = Operation<Input, Output>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_display_as_jepsen_calls() {
        let cas = Input::Cas {
            key: Some(Key::from("k")),
            expected: Value::Int(1),
            new: Value::str("a\"b"),
        };
        assert_eq!(cas.to_string(), "[\"k\"] cas 1 -> \"a\\\"b\"");
        assert_eq!(Input::Read { key: None }.to_string(), "read");
        assert_eq!(Output::Cas(false).to_string(), "fail");
        assert_eq!(Output::Value(Value::Nil).to_string(), "nil");
    }
}
