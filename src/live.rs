//! Values a reload replaces (the configuration, the API tokens, the rate limiters) while every reader goes on
//! without a lock: a reader takes the current value (an `Arc`) and keeps it for as long as its work takes, so one
//! request sees one configuration from start to end.

use std::sync::Arc;

use arc_swap::ArcSwap;

/// The current `T`, shared; cheap to clone (clones see the same value).
pub struct Live<T>(Arc<ArcSwap<T>>);

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Live<T> {
    pub fn new(value: T) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(value)))
    }

    /// The current value.
    pub fn get(&self) -> Arc<T> {
        self.0.load_full()
    }

    /// Replaces the value; readers holding the old one keep it until they let go.
    pub fn set(&self, value: T) {
        self.0.store(Arc::new(value));
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_keeps_its_value_while_clones_see_the_new_one() {
        let live = Live::new(1);
        let other = live.clone();
        let held = live.get();
        other.set(2);
        assert_eq!(*held, 1);
        assert_eq!(*live.get(), 2);
    }
}
