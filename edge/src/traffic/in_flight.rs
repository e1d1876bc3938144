//! The fast path's requests between its calls (`host/request/fast.rs`): what each one carries from
//! one synchronous call to the next, by id. Bounded: when full, a new request is refused — it
//! then takes the full path, which keeps its state on its own stack — unless some entry has
//! not been heard from for `max_age_ms`; a request's state is dropped only after that long in
//! silence. An entry is abandoned when its JS never comes back (the visitor went away
//! mid-fetch and the runtime dropped the request's continuation; a JS exception drops its
//! entry at once), so a flood of those costs later requests the fast path for a while, never
//! their answer. (Before: the oldest entry was dropped past 1,024, so 1,025 requests waiting
//! on a slow origin made the first one answer 502.)
//!
//! Ids start at a random point per instance: after a wasm trap the entry re-instantiates the
//! module, and a request still waiting from the old instance must not find a new request's
//! state under its id (it finds none and answers 502, as for lost state).

use std::collections::BTreeMap;

/// How many requests may be between calls at once in one isolate; more take the full path.
/// Each holds its request's headers: ~1–2 KB.
pub(crate) const MAX_PENDING: usize = 1024;

/// A request not heard from for this long is taken as abandoned when room is needed: far
/// longer than an origin is expected to take to answer (Cloudflare's proxy gives up on a
/// proxied origin after 100 s with a 524).
pub(crate) const ABANDONED_AFTER_MS: u64 = 300_000;

/// Requests between calls, by id.
pub(crate) struct InFlight<T> {
    next: u32,
    cap: usize,
    max_age_ms: u64,
    /// Id → (when last heard from, state).
    by_id: BTreeMap<u32, (u64, T)>,
    /// When full: no entry can be abandoned before this (saves rescanning on every refusal).
    full_until_ms: u64,
    seeded: bool,
}

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        InFlight::new(MAX_PENDING, ABANDONED_AFTER_MS)
    }
}

impl<T> InFlight<T> {
    /// At most `cap` entries; one not heard from for `max_age_ms` may be dropped for a new one.
    pub(crate) fn new(cap: usize, max_age_ms: u64) -> Self {
        InFlight {
            next: 0,
            cap,
            max_age_ms,
            by_id: BTreeMap::new(),
            full_until_ms: 0,
            seeded: false,
        }
    }

    /// Whether ids have a starting point yet ([`InFlight::seed`]).
    pub(crate) fn seeded(&self) -> bool {
        self.seeded
    }

    /// Where this instance's ids start (a random number; see the module doc).
    pub(crate) fn seed(&mut self, start: u32) {
        self.next = start;
        self.seeded = true;
    }

    /// Whether a new request would be taken in now (dropping abandoned entries if that makes
    /// room). A caller asks first, before doing the work the state holds.
    pub(crate) fn has_room(&mut self, now_ms: u64) -> bool {
        if self.by_id.len() < self.cap {
            return true;
        }
        if now_ms < self.full_until_ms {
            return false;
        }
        let max_age = self.max_age_ms;
        self.by_id
            .retain(|_, (seen, _)| now_ms.saturating_sub(*seen) < max_age);
        let oldest = self.by_id.values().map(|(seen, _)| *seen).min();
        self.full_until_ms = oldest.map_or(0, |t| t.saturating_add(max_age));
        self.by_id.len() < self.cap
    }

    /// Takes in a new request's state; `None` when full (the state is dropped: the caller
    /// takes the full path, nothing has been sent).
    pub(crate) fn admit(&mut self, now_ms: u64, state: T) -> Option<u32> {
        if !self.has_room(now_ms) {
            return None;
        }
        // Ids wrap after 2³² requests; one still held is skipped.
        loop {
            self.next = self.next.wrapping_add(1);
            if !self.by_id.contains_key(&self.next) {
                break;
            }
        }
        self.by_id.insert(self.next, (now_ms, state));
        Some(self.next)
    }

    /// The request's state, for its next step; `None` if it was never admitted or has been
    /// dropped as abandoned.
    pub(crate) fn take(&mut self, id: u32) -> Option<T> {
        self.by_id.remove(&id).map(|(_, state)| state)
    }

    /// Puts a taken state back for the request's next call (a retry, a bootstrap, an error
    /// page), heard from now. Never refused: it was counted when admitted.
    pub(crate) fn keep(&mut self, id: u32, now_ms: u64, state: T) {
        self.by_id.insert(id, (now_ms, state));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const AGE: u64 = 300_000;

    fn full(cap: usize) -> (InFlight<usize>, Vec<u32>) {
        let mut q = InFlight::new(cap, AGE);
        let ids = (0..cap).map(|i| q.admit(1_000, i).unwrap()).collect();
        (q, ids)
    }

    #[test]
    fn a_request_gets_its_own_state_back_once() {
        let mut q = InFlight::new(4, AGE);
        let a = q.admit(0, "a").unwrap();
        let b = q.admit(0, "b").unwrap();
        assert_ne!(a, b);
        assert_eq!(q.take(b), Some("b"));
        assert_eq!(q.take(b), None);
        assert_eq!(q.take(a), Some("a"));
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn when_full_a_new_request_is_refused_and_no_live_state_is_dropped() {
        let (mut q, ids) = full(1024);
        assert_eq!(q.admit(2_000, 9999), None);
        for (i, id) in ids.into_iter().enumerate() {
            assert_eq!(q.take(id), Some(i), "request {i} lost its state");
        }
    }

    #[test]
    fn a_state_put_back_is_not_refused_even_when_full() {
        let (mut q, ids) = full(3);
        let s = q.take(ids[0]).unwrap();
        assert!(q.admit(1_000, 7).is_some());
        q.keep(ids[0], 1_500, s);
        assert_eq!(q.len(), 4);
        assert_eq!(q.take(ids[0]), Some(0));
    }

    #[test]
    fn abandoned_entries_make_room_once_they_are_old() {
        let (mut q, ids) = full(3);
        assert_eq!(q.admit(1_000 + AGE - 1, 7), None);
        let id = q.admit(1_000 + AGE, 7).expect("room after max age");
        assert_eq!(q.take(id), Some(7));
        assert!(ids.iter().all(|&id| q.take(id).is_none()));
    }

    #[test]
    fn heard_from_again_means_not_abandoned() {
        let (mut q, ids) = full(2);
        let s = q.take(ids[0]).unwrap();
        q.keep(ids[0], 1_000 + AGE - 10, s);
        // ids[1] is old, ids[0] was just heard from: only ids[1] goes.
        assert!(q.admit(1_000 + AGE, 7).is_some());
        assert_eq!(q.take(ids[0]), Some(0));
        assert_eq!(q.take(ids[1]), None);
    }

    #[test]
    fn a_refusal_does_not_rescan_until_an_entry_can_have_aged_out() {
        let (mut q, ids) = full(2);
        assert!(!q.has_room(1_500));
        // Heard from again: no longer the oldest, but the table only learns that on a rescan,
        // which comes when the *oldest* could have aged out.
        let s = q.take(ids[0]).unwrap();
        q.keep(ids[0], 2_000, s);
        assert!(!q.has_room(1_000 + AGE - 1));
        assert!(q.has_room(1_000 + AGE), "ids[1] aged out");
        assert_eq!(q.take(ids[0]), Some(0));
    }

    #[test]
    fn ids_start_where_seeded() {
        let mut q = InFlight::new(4, AGE);
        assert!(!q.seeded());
        q.seed(1_000_000);
        assert!(q.seeded());
        assert_eq!(q.admit(0, "a"), Some(1_000_001));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Admit,
        Take(usize),
        Keep(usize),
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Admit),
            2 => (0usize..64).prop_map(Op::Take),
            1 => (0usize..64).prop_map(Op::Keep),
            1 => (0u64..AGE / 2).prop_map(Op::Wait),
        ]
    }

    proptest! {
        /// Whatever comes in, goes out and waits: ids held at once are distinct, a state heard
        /// from within `max_age_ms` is never lost, the table holds nothing the requests do not,
        /// and a new request is refused only when `cap` live requests are in it.
        #[test]
        fn no_live_state_is_lost_and_refusals_mean_full(
            start in any::<u32>(),
            ops in prop::collection::vec(op(), 0..200),
        ) {
            const CAP: usize = 8;
            let mut q = InFlight::new(CAP, AGE);
            q.seed(start);
            let (mut now, mut serial) = (0u64, 0u64);
            // The model: in the table unless abandoned (id, last heard, state); taken out.
            let mut held: Vec<(u32, u64, u64)> = Vec::new();
            let mut out: Vec<(u32, u64)> = Vec::new();
            for op in ops {
                match op {
                    Op::Admit => {
                        serial += 1;
                        let live = held.iter().filter(|(_, seen, _)| now - seen < AGE).count();
                        match q.admit(now, serial) {
                            Some(id) => {
                                let taken = out.iter().map(|(i, _)| *i);
                                let mut ids = held.iter().map(|(i, _, _)| *i).chain(taken);
                                prop_assert!(ids.all(|h| h != id), "id {} given twice", id);
                                held.push((id, now, serial));
                            }
                            None => prop_assert!(live >= CAP, "refused with {} live", live),
                        }
                    }
                    Op::Take(i) if !held.is_empty() => {
                        let (id, seen, state) = held.remove(i % held.len());
                        let got = q.take(id);
                        if now - seen < AGE {
                            prop_assert_eq!(got, Some(state), "a live state was lost");
                        }
                        if let Some(state) = got {
                            out.push((id, state));
                        }
                    }
                    Op::Keep(i) if !out.is_empty() => {
                        let (id, state) = out.remove(i % out.len());
                        q.keep(id, now, state);
                        held.push((id, now, state));
                    }
                    Op::Wait(ms) => now += ms,
                    _ => {}
                }
                prop_assert!(q.len() <= held.len());
            }
        }
    }

    #[test]
    fn ids_skip_one_still_held_after_wrapping() {
        let mut q = InFlight::new(4, AGE);
        let held = q.admit(0, "held").unwrap();
        q.next = u32::MAX;
        let id = q.admit(0, "new").unwrap();
        assert_eq!(id, 0);
        q.next = held - 1;
        let id = q.admit(0, "next").unwrap();
        assert_ne!(id, held);
        assert_eq!(q.take(held), Some("held"));
    }
}
