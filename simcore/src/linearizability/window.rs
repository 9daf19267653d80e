//! The smallest window of a violation: few operations that on their own cannot be
//! linearized, found by shrinking the failing prefix from the left.
//!
//! The search stops at a return at time `end` that no valid order gets past (see
//! `evidence.rs`). For a start time `start ≤ end`, the window is every operation running
//! at some instant of `[start, end]`: called by `end`, returned at or after `start`.
//! Operations returning after `end` are cut there (open, output unknown), as their
//! returns are not what fails. Operations called before `start` are *carried in*: they may
//! have taken effect before `start`, inside the window, or never (open, output unknown).
//! And the window starts from an *unknown* state ([`Model::step_unknown`]): whatever the
//! operations before `start` did. So if no order of the window works, none of the whole
//! history does, whatever happened before `start`: the window alone is a proof, a
//! person needs to read nothing else. (If a linearization of the history existed, the
//! operations after the last one that returned before `start`, from the state it left,
//! would linearize the window.)
//!
//! The smallest window is the one with the latest `start`, among the operations' call
//! times, that still cannot be linearized; cutting later only weakens a window, so a binary
//! search finds it. When no window from an unknown state fails, the window is the whole
//! prefix from the initial state. Each probe has a step budget; a probe that runs out
//! counts as "no proof", so a reported window is always a proven one.

use super::evidence::{record, Evidence, Window};
use super::history::Operation;
use super::model::Model;
use super::search::{search, Control, Found, Op};

/// Search steps one probe may take.
const PROBE_STEPS: u64 = 2_000_000;

/// A model started from an unknown state (`None`), for windows.
struct FromUnknown<'m, M>(&'m M);

impl<M: Model> Model for FromUnknown<'_, M> {
    type Input = M::Input;
    type Output = M::Output;
    type State = Option<M::State>;

    fn init(&self) -> Option<M::State> {
        None
    }

    fn step(
        &self,
        state: &Option<M::State>,
        input: &M::Input,
        output: Option<&M::Output>,
    ) -> Option<Option<M::State>> {
        match state {
            None => self.0.step_unknown(input, output),
            Some(state) => self.0.step(state, input, output).map(Some),
        }
    }

    fn is_noop(&self, input: &M::Input, output: Option<&M::Output>) -> bool {
        self.0.is_noop(input, output)
    }
}

/// The window found: indices into the searched ops, in call order.
struct WindowFound {
    operations: Vec<usize>,
    /// How many of them were called before the window's start.
    carried_in: usize,
    /// Whether the window is the whole prefix, from the initial state.
    from_start: bool,
    start: u64,
}

/// Window operations: (index into the searched ops, the op as weakened).
type WindowOps<'h, I, O> = Vec<(usize, Op<'h, I, O>)>;

/// The window ops for `start` (see the module doc): (index into `ops`, op as weakened).
fn window<'h, I, O>(ops: &[Op<'h, I, O>], end: u64, start: u64) -> WindowOps<'h, I, O> {
    let mut window: Vec<(usize, Op<'h, I, O>)> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.call <= end && op.ret >= start)
        .map(|(index, op)| {
            let weakened = op.ret > end || op.call < start;
            (
                index,
                Op {
                    index: op.index,
                    input: op.input,
                    output: if weakened { None } else { op.output },
                    call: op.call,
                    ret: if weakened { u64::MAX } else { op.ret },
                },
            )
        })
        .collect();
    window.sort_by_key(|(index, op)| (op.call, *index));
    window
}

fn fails<M: Model>(model: &M, ops: &WindowOps<'_, M::Input, M::Output>) -> bool {
    let kept: Vec<Op<'_, M::Input, M::Output>> = ops
        .iter()
        .filter(|(_, op)| !model.is_noop(op.input, op.output))
        .map(|(_, op)| Op {
            index: op.index,
            input: op.input,
            output: op.output,
            call: op.call,
            ret: op.ret,
        })
        .collect();
    let mut control = Control {
        steps: 0,
        max_steps: Some(PROBE_STEPS),
        deadline: None,
        stop: None,
    };
    matches!(
        search(model, &kept, &mut control),
        Ok(Found::Violation { .. })
    )
}

/// The smallest window of the violation whose blocked operation is `ops[blocked]`.
fn find<M: Model>(model: &M, ops: &[Op<'_, M::Input, M::Output>], blocked: usize) -> WindowFound {
    let end = ops[blocked].ret;
    let mut starts: Vec<u64> = ops
        .iter()
        .filter(|op| op.call <= end)
        .map(|op| op.call)
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let unknown = FromUnknown(model);
    // Largest i in 1..starts.len() whose window fails from an unknown state.
    let (mut low, mut high) = (0usize, starts.len());
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if fails(&unknown, &window(ops, end, starts[middle])) {
            low = middle;
        } else {
            high = middle;
        }
    }
    let from_start = low == 0 && !fails(&unknown, &window(ops, end, starts[0]));
    let start = starts.get(low).copied().unwrap_or(0);
    let chosen = window(ops, end, start);
    WindowFound {
        carried_in: chosen.iter().filter(|(_, op)| op.call < start).count(),
        operations: chosen.into_iter().map(|(index, _)| index).collect(),
        from_start,
        start,
    }
}

/// The smallest window of a violation found by [`check`](super::check) on `history`
/// (see the module doc), or `None` if the evidence is not about this history.
pub fn smallest_window<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    evidence: &Evidence,
) -> Option<Window> {
    let part = model
        .partition(history)
        .into_iter()
        .find(|part| part.key == evidence.key)?;
    let ops: Vec<Op<'_, M::Input, M::Output>> = part
        .operations
        .iter()
        .filter(|&&index| {
            let operation = &history[index];
            !model.is_noop(&operation.input, operation.output.as_ref())
        })
        .map(|&index| Op::of(history, index))
        .collect();
    let blocked = ops
        .iter()
        .position(|op| op.index == evidence.blocked.index)?;
    let found = find(model, &ops, blocked);
    Some(Window {
        start: found.start,
        from_start: found.from_start,
        carried_in: found.carried_in,
        operations: found
            .operations
            .iter()
            .map(|&index| record(history, &ops[index]))
            .collect(),
    })
}
