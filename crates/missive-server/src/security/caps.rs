//! Caps on how many of something one key holds at once: WebSockets per
//! user (`MAX_SOCKETS_PER_USER`), connections per client address
//! (`MAX_CONNECTIONS_PER_ADDRESS`). A place is taken before the thing is
//! granted and given back when its [`Slot`] is dropped, so concurrent
//! takers cannot overshoot the cap.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Places held per key, at most `max` each (0: no cap, still counted).
pub struct PerKey<K> {
    max: usize,
    open: Mutex<HashMap<K, usize>>,
}

/// One place of a key; given back when dropped.
pub struct Slot<K: Eq + Hash> {
    cap: Arc<PerKey<K>>,
    key: K,
}

impl<K> Default for PerKey<K> {
    fn default() -> Self {
        PerKey::new(0)
    }
}

impl<K> PerKey<K> {
    /// A cap of `max` places per key (0: none).
    pub fn new(max: usize) -> Self {
        PerKey {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The cap (0: none).
    pub fn max(&self) -> usize {
        self.max
    }
}

impl<K: Eq + Hash + Clone> PerKey<K> {
    /// One more place for `key`, or `None` at the cap.
    pub fn take(self: &Arc<Self>, key: K) -> Option<Slot<K>> {
        let mut open = self.open.lock().ok()?;
        let n = open.entry(key.clone()).or_insert(0);
        if self.max != 0 && *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            cap: self.clone(),
            key,
        })
    }
}

impl<K: Eq + Hash> Drop for Slot<K> {
    fn drop(&mut self) {
        if let Ok(mut open) = self.cap.open.lock()
            && let Some(n) = open.get_mut(&self.key)
        {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_max_places_and_gets_them_back() {
        let cap = Arc::new(PerKey::new(2));
        let a = cap.take("a").expect("first");
        let _b = cap.take("a").expect("second");
        assert!(cap.take("a").is_none(), "at the cap");
        assert!(cap.take("b").is_some(), "other keys are not affected");
        drop(a);
        assert!(cap.take("a").is_some(), "a place given back");
        let none = Arc::new(PerKey::new(0));
        let held: Vec<_> = (0..100).filter_map(|_| none.take("a")).collect();
        assert_eq!(held.len(), 100, "0 is no cap");
    }
}
