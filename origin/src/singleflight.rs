//! At most one render per object key at a time in this process: concurrent
//! requests for the same card wait for the first one's result.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::OnceCell;

pub struct SingleFlight<T> {
    inflight: Mutex<HashMap<String, Arc<OnceCell<T>>>>,
    /// Calls that found a run of their key in progress and waited for it.
    joins: Counter,
}

impl<T: Clone> Default for SingleFlight<T> {
    fn default() -> Self {
        Self::counting(Counter::default())
    }
}

impl<T: Clone> SingleFlight<T> {
    pub fn counting(joins: Counter) -> Self {
        Self {
            inflight: Mutex::new(HashMap::new()),
            joins,
        }
    }

    /// Runs `work` unless a call for `key` is already running, in which case its
    /// result is shared. If the running caller is cancelled, a waiter takes over.
    pub async fn run<F>(&self, key: &str, work: impl FnOnce() -> F) -> T
    where
        F: Future<Output = T>,
    {
        let cell = match self
            .inflight
            .lock()
            .expect("single-flight map poisoned")
            .entry(key.to_string())
        {
            Entry::Occupied(running) => {
                self.joins.inc();
                running.get().clone()
            }
            Entry::Vacant(free) => free.insert(Default::default()).clone(),
        };
        let value = cell.get_or_init(work).await.clone();
        let mut map = self.inflight.lock().expect("single-flight map poisoned");
        if map.get(key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            map.remove(key);
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_calls_share_one_run() {
        let flight = Arc::new(SingleFlight::<usize>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (flight, runs, mut gate) = (flight.clone(), runs.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                flight
                    .run("k", || async move {
                        // Hold the flight open until every caller has joined.
                        gate.wait_for(|open| *open).await.unwrap();
                        runs.fetch_add(1, Ordering::SeqCst) + 41
                    })
                    .await
            }));
        }
        // Wait until all eight callers share the one cell, then let the work finish.
        let waiters = || {
            flight
                .inflight
                .lock()
                .unwrap()
                .get("k")
                .map_or(0, Arc::strong_count)
        };
        while waiters() < 9 {
            tokio::task::yield_now().await;
        }
        assert_eq!(flight.joins.get(), 7);
        release.send(true).unwrap();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 41);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(
            flight.inflight.lock().unwrap().is_empty(),
            "finished flights are forgotten"
        );
        // A later call runs again.
        assert_eq!(flight.run("k", || async { 7 }).await, 7);
    }
}
