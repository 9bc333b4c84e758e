//! Background work owned by the component that starts it.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;

/// A periodic task of one component; dropping it stops the task.
#[derive(Debug)]
#[must_use = "the task stops when this is dropped"]
pub struct Background(JoinHandle<()>);

impl Background {
    /// Runs `step` every `every`, the first time at once.
    pub(crate) fn every<F, Fut>(every: Duration, mut step: F) -> Background
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Background(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                step().await;
            }
        }))
    }

    pub(crate) fn spawn(task: impl Future<Output = ()> + Send + 'static) -> Background {
        Background(tokio::spawn(task))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}
