//! The search: Wing & Gong's backtracking over call/return events, with Lowe's memo of
//! (set of linearized operations, model state) pairs already explored.
//!
//! Events live in a doubly linked list in time order (call before return at equal times:
//! such operations overlap). Walking it from the front, a *call* is a candidate to take
//! effect now: if the model accepts it and the pair (linearized ∪ {it}, new state) is new,
//! the call and its return are unlinked ("lifted") and the walk restarts from the front. A
//! *return* reached this way belongs to an operation not yet linearized, which must have
//! taken effect before it: dead end, so undo the last choice (relink it, restore the state)
//! and try the next call after it. The history is linearizable when the list is empty, and
//! not when a dead end has no choice left to undo.
//!
//! Two additions. When a configuration is entered, a legal *read-only* candidate (see
//! `Model::is_read_only`) is taken at once as the only choice there ("forced"), so
//! backtracking goes straight past it. And every dead end's return is compared with the
//! furthest one seen (the *frontier*): on a violation, the operation returning there and
//! the path that reached it are the evidence, at no extra search cost.
//!
//! Costs are kept flat: the list is three `u32` arrays, the set of linearized operations a
//! bitset with an incrementally maintained Zobrist hash, and the memo an open-addressing
//! table over one arena, so a step allocates nothing except the model's new state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::hash::{hash_of, mix};
use super::model::Model;

/// One operation as the search sees it.
pub(crate) struct Op<'h, I, O> {
    /// Index in the checked history (for evidence; the search ignores it).
    pub(crate) index: usize,
    pub(crate) input: &'h I,
    pub(crate) output: Option<&'h O>,
    pub(crate) call: u64,
    /// `u64::MAX` for an operation that never returned.
    pub(crate) ret: u64,
}

impl<'h, I, O> Op<'h, I, O> {
    /// The search's view of `history[index]`.
    pub(crate) fn of(history: &'h [super::history::Operation<I, O>], index: usize) -> Op<'h, I, O> {
        let operation = &history[index];
        Op {
            index,
            input: &operation.input,
            output: operation.output.as_ref(),
            call: operation.call,
            ret: operation.ret_or_infinity(),
        }
    }
}

/// The budget of one partition's search, and the flag other partitions raise to stop it.
pub(crate) struct Control<'a> {
    pub(crate) steps: u64,
    pub(crate) max_steps: Option<u64>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) stop: Option<&'a AtomicBool>,
}

/// Why a search ended without a verdict.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Interrupt {
    /// The step or time budget ran out (the text says which).
    Budget(String),
    /// Another partition found a violation.
    Stopped,
}

impl Control<'_> {
    #[inline]
    fn tick(&mut self) -> Result<(), Interrupt> {
        self.steps += 1;
        if let Some(max_steps) = self.max_steps {
            if self.steps > max_steps {
                return Err(Interrupt::Budget(format!(
                    "the step budget ({max_steps} steps) ran out"
                )));
            }
        }
        if self.steps & 0x3ff == 0 {
            if let Some(stop) = self.stop {
                if stop.load(Ordering::Relaxed) {
                    return Err(Interrupt::Stopped);
                }
            }
            if let Some(deadline) = self.deadline {
                if Instant::now() >= deadline {
                    return Err(Interrupt::Budget("the time budget ran out".to_string()));
                }
            }
        }
        Ok(())
    }
}

/// What a finished search found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// `order` is a valid order (indices into the ops) of every operation that took
    /// effect; operations left out never returned and are taken not to have happened.
    Linearizable { order: Vec<usize> },
    /// No order exists. `blocked` is the operation whose return is the furthest point in
    /// time any valid order reached: every valid order that places all operations returned
    /// before it still cannot place it. `order` is one such valid order (indices into the
    /// ops), the one that first got there.
    Violation { order: Vec<usize>, blocked: usize },
}

const HEAD: u32 = 0;

/// The events, as a doubly linked list over node numbers: 0 is the head sentinel, 1..=2n
/// the events in time order, 2n+1 the tail sentinel.
struct Events {
    next: Vec<u32>,
    prev: Vec<u32>,
    /// The operation of each node.
    op: Vec<u32>,
    /// For a call node, its return node; 0 for return nodes and sentinels.
    mate: Vec<u32>,
    tail: u32,
}

impl Events {
    fn new<I, O>(ops: &[Op<'_, I, O>]) -> Events {
        let mut order: Vec<(u64, bool, u32)> = Vec::with_capacity(ops.len() * 2);
        for (index, op) in ops.iter().enumerate() {
            order.push((op.call, false, index as u32));
            order.push((op.ret, true, index as u32));
        }
        order.sort_unstable();
        let count = order.len() as u32;
        let tail = count + 1;
        let mut events = Events {
            next: (1..=tail).chain([tail]).collect(),
            prev: [HEAD].into_iter().chain(0..count).chain([count]).collect(),
            op: vec![u32::MAX; tail as usize + 1],
            mate: vec![0; tail as usize + 1],
            tail,
        };
        let mut call_node = vec![0u32; ops.len()];
        for (position, &(_, is_return, op)) in order.iter().enumerate() {
            let node = position as u32 + 1;
            events.op[node as usize] = op;
            if is_return {
                events.mate[call_node[op as usize] as usize] = node;
            } else {
                call_node[op as usize] = node;
            }
        }
        events
    }

    #[inline]
    fn unlink(&mut self, node: u32) {
        let (prev, next) = (self.prev[node as usize], self.next[node as usize]);
        self.next[prev as usize] = next;
        self.prev[next as usize] = prev;
    }

    #[inline]
    fn relink(&mut self, node: u32) {
        let (prev, next) = (self.prev[node as usize], self.next[node as usize]);
        self.next[prev as usize] = node;
        self.prev[next as usize] = node;
    }

    /// Removes a call and its return (the operation is linearized).
    #[inline]
    fn lift(&mut self, call: u32) {
        self.unlink(call);
        self.unlink(self.mate[call as usize]);
    }

    /// Undoes [`Events::lift`]: relinks in the reverse order of unlinking.
    #[inline]
    fn unlift(&mut self, call: u32) {
        self.relink(self.mate[call as usize]);
        self.relink(call);
    }
}

/// Lowe's memo: the set of (linearized operations, state) pairs already explored, as an
/// open-addressing hash table over one arena. A slot packs 32 bits of the pair's hash with
/// its arena index, so most probes never touch the arena; an arena record is the full hash
/// followed by the bitset, so a real match costs one more cache line, plus the state.
struct Memo<S> {
    /// Words per arena record: the hash, then the bitset.
    stride: usize,
    /// `(hash >> 32) << 32 | (arena index + 1)`, or 0 for an empty slot.
    slots: Vec<u64>,
    shift: u32,
    records: Vec<u64>,
    states: Vec<S>,
}

const FIBONACCI: u64 = 0x9e37_79b9_7f4a_7c15;

impl<S: Eq + Clone> Memo<S> {
    fn new(words: usize) -> Memo<S> {
        let capacity_log2 = 12;
        Memo {
            stride: words + 1,
            slots: vec![0; 1 << capacity_log2],
            shift: 64 - capacity_log2,
            records: Vec::new(),
            states: Vec::new(),
        }
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        (hash.wrapping_mul(FIBONACCI) >> self.shift) as usize
    }

    fn grow(&mut self) {
        let capacity = self.slots.len() * 2;
        self.shift -= 1;
        let old = std::mem::replace(&mut self.slots, vec![0; capacity]);
        let mask = capacity - 1;
        for slot_value in old.into_iter().filter(|&value| value != 0) {
            let index = (slot_value as u32 - 1) as usize;
            let mut slot = self.home(self.records[index * self.stride]);
            while self.slots[slot] != 0 {
                slot = (slot + 1) & mask;
            }
            self.slots[slot] = slot_value;
        }
    }

    /// Adds the pair unless it is there already; returns whether it was new.
    #[inline]
    fn insert(&mut self, hash: u64, bits: &[u64], state: &S) -> bool {
        if (self.states.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let tag = hash & 0xffff_ffff_0000_0000;
        let mut slot = self.home(hash);
        loop {
            let value = self.slots[slot];
            if value == 0 {
                self.slots[slot] = tag | (self.states.len() as u64 + 1);
                self.records.push(hash);
                self.records.extend_from_slice(bits);
                self.states.push(state.clone());
                return true;
            }
            if value & 0xffff_ffff_0000_0000 == tag {
                let index = (value as u32 - 1) as usize;
                let record = &self.records[index * self.stride..(index + 1) * self.stride];
                if record[0] == hash
                    && record[1..].iter().zip(bits).all(|(a, b)| a == b)
                    && self.states[index] == *state
                {
                    return false;
                }
            }
            slot = (slot + 1) & mask;
        }
    }
}

/// One choice on the current path: the call linearized, the state and state hash before
/// it, and whether it was forced (a read-only operation placed as soon as legal: no other
/// choice at its level needs trying, so backtracking goes straight past it).
struct Frame<S> {
    call: u32,
    previous: S,
    previous_hash: u64,
    forced: bool,
}

/// Searches for a linearization of `ops` (one independent sub-history).
pub(crate) fn search<M: Model>(
    model: &M,
    ops: &[Op<'_, M::Input, M::Output>],
    control: &mut Control<'_>,
) -> Result<Found, Interrupt> {
    if ops.is_empty() {
        return Ok(Found::Linearizable { order: Vec::new() });
    }
    let mut events = Events::new(ops);
    let zobrist: Vec<u64> = (0..ops.len() as u64)
        .map(|index| mix(index.wrapping_add(0x2545_f491_4f6c_dd1d)))
        .collect();
    let read_only: Vec<bool> = ops
        .iter()
        .map(|op| model.is_read_only(op.input, op.output))
        .collect();
    let words = ops.len().div_ceil(64);
    let mut bits = vec![0u64; words];
    let mut bits_hash = 0u64;
    let mut memo: Memo<M::State> = Memo::new(words);
    let mut state = model.init();
    let mut state_hash = mix(hash_of(&state));
    let mut stack: Vec<Frame<M::State>> = Vec::with_capacity(ops.len());
    // The furthest return node any dead end was at, and the path that got there.
    let mut frontier = HEAD;
    let mut frontier_order: Vec<u32> = Vec::new();
    let mut node = HEAD;
    // Whether the current configuration was just entered (so forced moves are looked for).
    let mut fresh = true;

    // Undoes choices up to the last unforced one and resumes after it, or ends the search.
    macro_rules! backtrack {
        () => {
            loop {
                let Some(frame) = stack.pop() else {
                    return Ok(Found::Violation {
                        order: frontier_order.iter().map(|&op| op as usize).collect(),
                        blocked: events.op[frontier as usize] as usize,
                    });
                };
                state = frame.previous;
                state_hash = frame.previous_hash;
                let index = events.op[frame.call as usize] as usize;
                bits[index / 64] &= !(1u64 << (index % 64));
                bits_hash ^= zobrist[index];
                events.unlift(frame.call);
                if !frame.forced {
                    node = events.next[frame.call as usize];
                    break;
                }
            }
        };
    }

    // Makes `call` (with the state it leads to) the next choice, unless the memo has it.
    macro_rules! try_push {
        ($call:expr, $index:expr, $next_state:expr, $next_state_hash:expr, $forced:expr) => {{
            let (word, bit) = ($index / 64, 1u64 << ($index % 64));
            bits[word] |= bit;
            let next_bits_hash = bits_hash ^ zobrist[$index];
            if memo.insert(next_bits_hash ^ $next_state_hash, &bits, &$next_state) {
                stack.push(Frame {
                    call: $call,
                    previous: std::mem::replace(&mut state, $next_state),
                    previous_hash: std::mem::replace(&mut state_hash, $next_state_hash),
                    forced: $forced,
                });
                bits_hash = next_bits_hash;
                events.lift($call);
                if events.next[HEAD as usize] == events.tail {
                    return Ok(Found::Linearizable {
                        order: stack
                            .iter()
                            .map(|frame| events.op[frame.call as usize] as usize)
                            .collect(),
                    });
                }
                fresh = true;
                true
            } else {
                bits[word] &= !bit;
                false
            }
        }};
    }

    loop {
        if fresh {
            fresh = false;
            // A legal read-only candidate is taken at once, and is the only choice here.
            let mut candidate = events.next[HEAD as usize];
            let mut forced = None;
            while events.mate[candidate as usize] != 0 {
                control.tick()?;
                let index = events.op[candidate as usize] as usize;
                if read_only[index] {
                    let op = &ops[index];
                    if model.step(&state, op.input, op.output).is_some() {
                        forced = Some((candidate, index));
                        break;
                    }
                }
                candidate = events.next[candidate as usize];
            }
            match forced {
                Some((call, index)) => {
                    let same = state.clone();
                    let same_hash = state_hash;
                    if !try_push!(call, index, same, same_hash, true) {
                        // Already explored from an equal configuration: dead end.
                        backtrack!();
                    }
                }
                None => node = events.next[HEAD as usize],
            }
            continue;
        }
        control.tick()?;
        let mate = events.mate[node as usize];
        if mate != 0 {
            // A call: try to linearize its operation now. Read-only operations cannot be
            // legal here (they would have been forced when this configuration was entered).
            let index = events.op[node as usize] as usize;
            if !read_only[index] {
                let op = &ops[index];
                if let Some(next_state) = model.step(&state, op.input, op.output) {
                    let next_state_hash = mix(hash_of(&next_state));
                    if try_push!(node, index, next_state, next_state_hash, false) {
                        continue;
                    }
                }
            }
            node = events.next[node as usize];
        } else if ops[events.op[node as usize] as usize].ret == u64::MAX {
            // The return of an operation that never returned: every operation left is one
            // (their returns come last), and each may simply never have taken effect.
            return Ok(Found::Linearizable {
                order: stack
                    .iter()
                    .map(|frame| events.op[frame.call as usize] as usize)
                    .collect(),
            });
        } else {
            // A return of an operation not linearized yet: undo the last choice.
            if node > frontier {
                frontier = node;
                frontier_order.clear();
                frontier_order.extend(stack.iter().map(|frame| events.op[frame.call as usize]));
            }
            backtrack!();
        }
    }
}
