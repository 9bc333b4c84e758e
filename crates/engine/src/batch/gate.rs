//! A semaphore whose size changes while its permits are out: the
//! per-replica and per-group slots of [`super::limits`], resized by
//! adaptive concurrency.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Fair (waiters are served in order) and resizable.
#[derive(Debug)]
pub struct Gate {
    sem: Arc<Semaphore>,
    sizes: Mutex<Sizes>,
    /// Set when someone found no free pass or took the last one; taken by
    /// the controller's tick ("was the limit reached?").
    saturated: AtomicBool,
}

#[derive(Debug)]
struct Sizes {
    size: usize,
    /// Passes out beyond `size` after a shrink: that many are forgotten
    /// as they come back instead of being freed.
    owed: usize,
}

/// One pass through a [`Gate`], freed (or forgotten, after a shrink) on
/// drop.
#[derive(Debug)]
pub struct Pass {
    permit: Option<OwnedSemaphorePermit>,
    gate: Arc<Gate>,
}

impl Gate {
    pub fn new(size: usize) -> Arc<Gate> {
        Arc::new(Gate {
            sem: Arc::new(Semaphore::new(size)),
            sizes: Mutex::new(Sizes { size, owed: 0 }),
            saturated: AtomicBool::new(false),
        })
    }

    fn sizes(&self) -> MutexGuard<'_, Sizes> {
        self.sizes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn size(&self) -> usize {
        self.sizes().size
    }

    /// Passes held now.
    pub fn in_use(&self) -> usize {
        let s = self.sizes();
        (s.size + s.owed).saturating_sub(self.sem.available_permits())
    }

    /// Whether the gate was full at some point since the last call.
    pub fn take_saturated(&self) -> bool {
        self.saturated.swap(false, Ordering::Relaxed)
    }

    /// Grows by freeing passes (first cancelling what a shrink still
    /// owes), shrinks by removing free passes and owing the rest.
    pub fn resize(&self, size: usize) {
        let mut s = self.sizes();
        if size > s.size {
            let grow = size - s.size;
            let cancelled = grow.min(s.owed);
            s.owed -= cancelled;
            self.sem.add_permits(grow - cancelled);
        } else {
            let shrink = s.size - size;
            let removed = self.sem.forget_permits(shrink);
            s.owed += shrink - removed;
        }
        s.size = size;
    }

    pub fn try_acquire(self: &Arc<Self>) -> Option<Pass> {
        match self.sem.clone().try_acquire_owned() {
            Ok(permit) => Some(self.pass(permit)),
            Err(_) => {
                self.saturated.store(true, Ordering::Relaxed);
                None
            }
        }
    }

    /// Waits for a pass; `None` only if the gate is closed, which it never
    /// is.
    pub async fn acquire(self: Arc<Self>) -> Option<Pass> {
        if let Some(pass) = self.try_acquire() {
            return Some(pass);
        }
        let permit = self.sem.clone().acquire_owned().await.ok()?;
        Some(self.pass(permit))
    }

    fn pass(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Pass {
        if self.sem.available_permits() == 0 {
            self.saturated.store(true, Ordering::Relaxed);
        }
        Pass {
            permit: Some(permit),
            gate: self.clone(),
        }
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let mut s = self.gate.sizes();
        if s.owed > 0 {
            s.owed -= 1;
            permit.forget();
        }
        // Otherwise freed here, under the lock, so `in_use` never sees it
        // half returned.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinking_below_the_passes_out_takes_effect_as_they_return() {
        let gate = Gate::new(3);
        let passes: Vec<_> = (0..3).filter_map(|_| gate.try_acquire()).collect();
        assert_eq!(passes.len(), 3);
        assert!(gate.take_saturated());
        gate.resize(1);
        assert_eq!((gate.size(), gate.in_use()), (1, 3));
        let mut passes = passes.into_iter();
        drop(passes.next());
        assert!(gate.try_acquire().is_none(), "still two out of one");
        drop(passes.next());
        assert!(gate.try_acquire().is_none(), "one out of one");
        drop(passes.next());
        assert_eq!(gate.in_use(), 0);
        let one = gate.try_acquire();
        assert!(one.is_some());
        assert!(gate.try_acquire().is_none());
    }

    #[test]
    fn growing_first_cancels_what_is_owed() {
        let gate = Gate::new(4);
        let passes: Vec<_> = (0..4).filter_map(|_| gate.try_acquire()).collect();
        gate.resize(2);
        gate.resize(3);
        assert_eq!((gate.size(), gate.in_use()), (3, 4));
        drop(passes);
        assert_eq!(gate.in_use(), 0);
        let again: Vec<_> = (0..5).filter_map(|_| gate.try_acquire()).collect();
        assert_eq!(again.len(), 3);
        gate.resize(6);
        assert!(gate.try_acquire().is_some());
    }

    #[tokio::test]
    async fn a_waiter_gets_a_pass_when_the_gate_grows() {
        let gate = Gate::new(1);
        let held = gate.try_acquire();
        let waiting = tokio::spawn(gate.clone().acquire());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        gate.resize(2);
        assert!(waiting.await.ok().flatten().is_some());
        drop(held);
    }
}
