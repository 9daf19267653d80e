//! What a violation shows a person: the point in time no valid order gets past, one valid
//! order that gets there, and the operations none of which can come next.
//!
//! The search records the furthest return it ever ran into: the return of some operation
//! X at time t. Every order that respects real time and the model and places all the
//! operations that returned before t still cannot place X; and such orders exist (one is
//! shown). So the history is fine up to just before t and breaks at X's return: the
//! operations to look at are those called before t, and the state the order leaves.
//! That order is also the longest linearizable prefix found: the events before t.
//!
//! Then the smallest window (`window.rs`): the few operations around t that alone, from
//! whatever state the earlier ones left, cannot be linearized.

use std::fmt;

use serde::Serialize;

use super::history::Operation;
use super::model::Model;
use super::search::Op;

/// One operation as shown in evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpRecord {
    /// Its index in the checked history.
    pub index: usize,
    /// The client that called it.
    pub client: u64,
    /// Call time.
    pub call: u64,
    /// Return time, `None` if it had not returned at the point the evidence is about.
    pub ret: Option<u64>,
    /// What it did, e.g. `write 3 → ok`, `read → ?` (`?`: output unknown).
    pub operation: String,
}

impl fmt::Display for OpRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let times = match self.ret {
            Some(ret) => format!("{}..{}", self.call, ret),
            None => format!("{}..", self.call),
        };
        write!(
            f,
            "#{:<4} client {:<3} t={:<13} {}",
            self.index, self.client, times, self.operation
        )
    }
}

/// An operation that could come next in real time but cannot be linearized there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StuckOp {
    /// The operation.
    pub operation: OpRecord,
    /// Why not: the model refuses it in that state, or every continuation after it fails.
    pub reason: String,
}

/// Evidence that a history is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// The key of the failing sub-history, when the model splits by key.
    pub key: Option<String>,
    /// The operation whose return no valid order gets past.
    pub blocked: OpRecord,
    /// How many operations of the sub-history were called before that return (the ones
    /// that matter).
    pub operations: usize,
    /// A valid order of operations that places every operation returned before `blocked`
    /// did, in order.
    pub linearized: Vec<OpRecord>,
    /// The model state after `linearized` (`Debug` form).
    pub state: String,
    /// The operations that could come next in real time, none of which can; `blocked` is
    /// first.
    pub stuck: Vec<StuckOp>,
    /// The smallest window that cannot be linearized on its own, once computed
    /// ([`smallest_window`](super::smallest_window): it costs a few more searches, so
    /// [`check`](super::check) leaves it out).
    pub window: Option<Window>,
}

/// The smallest window of a violation (see `window.rs` for the definition and the proof
/// that it is one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Window {
    /// When the window starts (a call time); it ends at the blocked return.
    pub start: u64,
    /// Whether it reaches back to the first operation and starts from the model's initial
    /// state; otherwise it fails from any state.
    pub from_start: bool,
    /// How many of its operations were called before `start` (taken as may-or-may-not
    /// have happened, output unknown).
    pub carried_in: usize,
    /// Its operations, in call order (as recorded, before any weakening).
    pub operations: Vec<OpRecord>,
}

/// How many operations of the valid order `Display` shows (`{:#}` shows all).
const SHOWN: usize = 10;

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not linearizable")?;
        if let Some(key) = &self.key {
            write!(f, " (key {key:?})")?;
        }
        let time = self.blocked.ret.unwrap_or(self.blocked.call);
        writeln!(
            f,
            ": no valid order gets past t={time}, where #{} returns",
            self.blocked.index
        )?;
        writeln!(f, "    {}", self.blocked)?;
        writeln!(
            f,
            "  every valid order of the {} operations called by then that places all those \
             returned before it cannot place #{}",
            self.operations, self.blocked.index
        )?;
        let skipped = if f.alternate() {
            0
        } else {
            self.linearized.len().saturating_sub(SHOWN)
        };
        let shown = if skipped > 0 {
            format!(", first {skipped} not shown")
        } else {
            String::new()
        };
        writeln!(
            f,
            "  one such order ({} operations{shown}):",
            self.linearized.len()
        )?;
        for operation in &self.linearized[skipped..] {
            writeln!(f, "    {operation}")?;
        }
        writeln!(f, "  state after it: {}", self.state)?;
        writeln!(f, "  none of these can come next:")?;
        for stuck in &self.stuck {
            writeln!(f, "    {}  ({})", stuck.operation, stuck.reason)?;
        }
        let Some(window) = &self.window else {
            return Ok(());
        };
        let from = if window.from_start {
            "from the initial state".to_string()
        } else {
            format!(
                "from t={}, whatever state the earlier operations left",
                window.start
            )
        };
        writeln!(
            f,
            "  smallest window that cannot be linearized on its own ({} operations, {from}, \
             to t={time}; {} called earlier may or may not have taken effect):",
            window.operations.len(),
            window.carried_in
        )?;
        for operation in &window.operations {
            writeln!(f, "    {operation}")?;
        }
        Ok(())
    }
}

/// How an operation is shown.
pub(crate) fn record<I: fmt::Display, O: fmt::Display>(
    history: &[Operation<I, O>],
    op: &Op<'_, I, O>,
) -> OpRecord {
    let output = op
        .output
        .map_or_else(|| "?".to_string(), |output| output.to_string());
    OpRecord {
        index: op.index,
        client: history[op.index].client,
        call: op.call,
        ret: (op.ret != u64::MAX).then_some(op.ret),
        operation: format!("{} → {}", op.input, output),
    }
}

/// Builds the evidence from what a failed search found: `order`, a valid order (indices
/// into `ops`) that reached the return of `ops[blocked]`, the furthest any got.
pub(crate) fn explain<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    key: Option<String>,
    ops: &[Op<'_, M::Input, M::Output>],
    order: &[usize],
    blocked: usize,
) -> Evidence {
    let record = |op: &Op<'_, M::Input, M::Output>| record(history, op);
    let mut state = model.init();
    let mut done = vec![false; ops.len()];
    let mut linearized = Vec::with_capacity(order.len());
    for &index in order {
        let op = &ops[index];
        match model.step(&state, op.input, op.output) {
            Some(next) => state = next,
            None => break, // cannot happen: the search accepted this order
        }
        done[index] = true;
        linearized.push(record(op));
    }
    let wall = ops[blocked].ret;
    let mut candidates: Vec<usize> = (0..ops.len())
        .filter(|&index| !done[index] && ops[index].call <= wall)
        .collect();
    candidates.sort_by_key(|&index| (index != blocked, ops[index].call, index));
    let stuck = candidates
        .into_iter()
        .map(|index| {
            let op = &ops[index];
            let reason = match (model.step(&state, op.input, op.output), index == blocked) {
                (None, true) => "returns here, but the model refuses it in this state",
                (None, false) => "the model refuses it in this state",
                (Some(_), true) => "returns here; allowed, but no order of the rest works after it",
                (Some(_), false) => "allowed here, but no order of the rest works after it",
            };
            StuckOp {
                operation: record(op),
                reason: reason.to_string(),
            }
        })
        .collect();
    Evidence {
        key,
        blocked: record(&ops[blocked]),
        operations: ops.iter().filter(|op| op.call <= wall).count(),
        linearized,
        state: format!("{state:?}"),
        stuck,
        window: None,
    }
}
