//! Connection workers: one single-threaded tokio runtime per core, each serving the
//! connections handed to it for their whole life.
//!
//! Why not the multi-threaded runtime everyone uses: pforte's requests are short and
//! CPU-bound (a signature, a few allocations, a message to the store). On tokio's
//! work-stealing scheduler, every batch of ready connections one worker picks up makes it
//! wake a parked sibling to steal half of it, so a request costs futex wake-ups,
//! inter-processor interrupts and context switches that are worth more than the request on
//! a small machine. A connection that stays on one thread, with its socket registered in
//! that thread's own event loop, pays none of that. In alternating A/B runs on the 2-core
//! benchmark machine: client_credentials -1% to +12% requests/s (7 pairs, about +3% on
//! average), refresh +6% to +17% (3 pairs).
//!
//! The price is that a busy connection cannot move to an idle core. New connections go to
//! the worker with the fewest open ones, and every handler is short: the slow work (password
//! hashing, SQLite, generating a realm's key) runs on threads of its own.
//!
//! Only the client's socket is pinned this way. PostgreSQL connections belong to the pool,
//! are opened on whichever runtime first needs one, and are used from all of them.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The set of connection workers. Cheap to clone; the threads stop when the last clone is
/// dropped (each finishes with its runtime, which drops the tasks still on it).
#[derive(Clone)]
pub struct Workers {
    inner: Arc<Inner>,
}

struct Inner {
    workers: Vec<Worker>,
}

struct Worker {
    handle: Handle,
    /// Connections currently served by this worker.
    open: Arc<AtomicUsize>,
    /// Dropping it ends the worker's thread.
    _stop: oneshot::Sender<()>,
}

impl Workers {
    /// Starts `count` workers (at least one), each on a thread of its own.
    pub fn start(count: usize) -> io::Result<Workers> {
        let mut workers = Vec::with_capacity(count.max(1));
        for i in 0..count.max(1) {
            let (handle_tx, handle_rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("pforte-worker-{i}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(err) => {
                            let _ = handle_tx.send(Err(err));
                            return;
                        }
                    };
                    if handle_tx.send(Ok(runtime.handle().clone())).is_err() {
                        return;
                    }
                    // Err: the sender was dropped, which is the signal as well.
                    let _ = runtime.block_on(stop_rx);
                })?;
            let handle = handle_rx
                .recv()
                .map_err(|_| io::Error::other("a connection worker ended while starting"))??;
            workers.push(Worker {
                handle,
                open: Arc::new(AtomicUsize::new(0)),
                _stop: stop_tx,
            });
        }
        Ok(Workers {
            inner: Arc::new(Inner { workers }),
        })
    }

    /// One worker per core the process may use.
    pub fn per_core() -> io::Result<Workers> {
        Workers::start(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Runs the future a connection's task is made of on the worker with the fewest open
    /// connections. `make` runs on that worker, so the socket it registers belongs to that
    /// worker's event loop.
    pub(crate) fn spawn_connection<F, Fut>(&self, make: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static + Send,
    {
        let Some(worker) = self
            .inner
            .workers
            .iter()
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
        else {
            return;
        };
        worker.open.fetch_add(1, Ordering::Relaxed);
        let open = OpenGuard(worker.open.clone());
        worker.handle.spawn(async move {
            let _open = open;
            make().await;
        });
    }

    #[cfg(test)]
    fn open_counts(&self) -> Vec<usize> {
        self.inner
            .workers
            .iter()
            .map(|w| w.open.load(Ordering::Relaxed))
            .collect()
    }
}

/// Counts a connection as open until its task ends, however it ends.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Spawns a connection that reports the thread it runs on and then lives until its
    /// sender is dropped.
    fn spawn_reporting(workers: &Workers) -> (oneshot::Sender<()>, String) {
        let (release, released) = oneshot::channel::<()>();
        let (name_tx, name_rx) = std::sync::mpsc::channel();
        workers.spawn_connection(move || async move {
            let name = std::thread::current().name().unwrap_or("?").to_owned();
            name_tx.send(name).unwrap();
            let _ = released.await;
        });
        (
            release,
            name_rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        )
    }

    #[test]
    fn connections_go_to_the_least_busy_worker_and_run_on_its_thread() {
        let workers = Workers::start(2).unwrap();
        let mut open: Vec<_> = (0..4).map(|_| spawn_reporting(&workers)).collect();
        let mut on: Vec<&str> = open.iter().map(|(_, name)| name.as_str()).collect();
        on.sort_unstable();
        assert_eq!(
            on,
            [
                "pforte-worker-0",
                "pforte-worker-0",
                "pforte-worker-1",
                "pforte-worker-1"
            ]
        );
        assert_eq!(workers.open_counts(), [2, 2]);

        // Both connections of worker 1 end: the next two go there, although taking turns
        // would give one of them to worker 0.
        open.retain(|(_, name)| name != "pforte-worker-1");
        wait_for_counts(&workers, [2, 0]);
        let (_a, first) = spawn_reporting(&workers);
        let (_b, second) = spawn_reporting(&workers);
        assert_eq!([first.as_str(), second.as_str()], ["pforte-worker-1"; 2]);
        assert_eq!(workers.open_counts(), [2, 2]);

        // However a connection's task ends, it stops counting.
        drop(open);
        wait_for_counts(&workers, [0, 2]);
    }

    fn wait_for_counts(workers: &Workers, expected: [usize; 2]) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while workers.open_counts() != expected {
            assert!(
                std::time::Instant::now() < deadline,
                "open connections stayed {:?}, expected {expected:?}",
                workers.open_counts()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn dropping_the_workers_drops_the_connections_still_on_them() {
        let workers = Workers::start(1).unwrap();
        let (ended_tx, ended_rx) = std::sync::mpsc::channel::<()>();
        struct SignalOnDrop(std::sync::mpsc::Sender<()>);
        impl Drop for SignalOnDrop {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        workers.spawn_connection(move || async move {
            let _signal = SignalOnDrop(ended_tx);
            started_tx.send(()).unwrap();
            std::future::pending::<()>().await;
        });
        started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        drop(workers);
        ended_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the pending task was dropped with its worker");
    }
}
