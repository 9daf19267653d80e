//! Linearizability checking of recorded client histories.
//!
//! A history is what clients saw: each operation's call time, return time and output.
//! It is *linearizable* with respect to a sequential model (a register, a key-value map) if
//! the operations can be put in one order that (1) the model accepts, each operation seeing
//! the effects of those before it, and (2) respects real time: an operation that returned
//! before another was called comes first. Each operation then looks as if it took effect at
//! one instant between its call and its return. Sequential consistency only asks (1) and
//! each client's own order; linearizability also forbids a read that returns an old value
//! after a newer write has returned to someone else: the anomaly of stale replicas.
//!
//! The search is Wing & Gong's: try each operation that may come next in real time (called
//! before the earliest return of those left), apply it to the model, recurse, and backtrack
//! when some operation's return is reached before it could be placed. Its cost is
//! exponential in the number of concurrent operations, and Lowe's memoization removes most
//! of it: two prefixes that linearized the same *set* of operations and left the model in
//! the same *state* have the same futures, so each (set, state) pair is explored once
//! (Porcupine and Knossos do the same). One more saving: an operation that never changes
//! the state where it is legal (a read, a failed CAS; [`Model::is_read_only`]) is placed
//! as soon as it is legal, with no other choice tried at that point, because moving it
//! earlier in any valid order changes no state and breaks no real-time constraint; this
//! removes most branching on read-heavy histories. `search.rs` holds the algorithm and its
//! data layout. Operations whose outcome is unknown (Jepsen's `:info`: a timeout) may have taken
//! effect or not, so they stay open to the end of the history with any output allowed;
//! they are what makes real histories hard, since each can be placed almost anywhere.
//!
//! P-compositionality (Herlihy & Wing's locality, used for checking by Horn & Kroening) is
//! the other big saving: a history of independent objects, such as the keys of a map, is
//! linearizable iff each object's sub-history is. A model says how to split a history
//! ([`Model::partition`]); the parts are searched separately, which turns one search
//! exponential in all concurrent operations into several exponential only in each key's
//! share, on several threads, with the first violating part stopping the others.
//!
//! The answer is three-valued: [`Verdict::Linearizable`], [`Verdict::NotLinearizable`] with
//! [`Evidence`] a person can read (the key, the return that no valid order gets past, one
//! valid order up to there, and why nothing can follow it), or
//! [`Verdict::Unknown`] when the [`Budget`] runs out: never a guess.
//!
//! Histories come from our simulator or from files as Jepsen and Knossos write them
//! ([`load`]: EDN op maps in any layout, Jepsen log lines; see `edn.rs`, `edn_history.rs`,
//! `jepsen_log.rs`), and can be written as EDN maps ([`write_edn`]) for Jepsen's own tools.
//! Models: [`Register`] (read/write/cas, one register per key, Porcupine's or Knossos's
//! reading), [`Kv`] (get/put/append strings per key; [`KvWholeMap`] checks the whole map as
//! one object), [`Mutex`] and [`MultiRegister`]; [`set`] is Jepsen's set checker, which is
//! not about linearizability. A violation's [`smallest_window`] and the [`html`] page show
//! it to a person; [`command`] is `sim check-history`.
//!
//! ```
//! use simcore::linearizability::{check, Budget, Input, Operation, Output, Register, Value, Verdict};
//!
//! let write = Operation { client: 0, input: Input::Write { key: None, value: Value::Int(1) },
//!                         output: Some(Output::Done), call: 0, ret: Some(10) };
//! let stale_read = Operation { client: 1, input: Input::Read { key: None },
//!                              output: Some(Output::Value(Value::Nil)), call: 20, ret: Some(30) };
//! let outcome = check(&Register::default(), &[write, stale_read], Budget::unlimited());
//! assert!(matches!(outcome.verdict, Verdict::NotLinearizable(_)));
//! ```

#![warn(missing_docs)]

mod check;
pub mod command;
mod edn;
mod edn_history;
mod evidence;
mod hash;
mod history;
pub mod html;
mod jepsen_log;
mod kv;
mod load;
mod model;
mod multi_register;
mod mutex;
mod register;
mod search;
pub mod set;
#[cfg(test)]
mod testing;
mod window;

pub use check::{check, check_parts, Budget, Outcome, PartFound, Stats, Verdict};
pub use edn_history::{edn_string, write_edn};
pub use evidence::{Evidence, OpRecord, StuckOp, Window};
pub use history::{Input, JepsenOperation, Key, MicroOp, Operation, Output, Value};
pub use kv::{HashedStr, Kv, KvMap, KvWholeMap};
pub use load::{
    load, parse_history, parse_key_values, parse_value, Format, InputError, LoadedHistory,
};
pub use model::{Model, Partition};
pub use multi_register::{MultiRegister, Registers};
pub use mutex::Mutex;
pub use register::Register;
pub use window::smallest_window;
