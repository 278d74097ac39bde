//! Connection workers: one single-threaded tokio runtime per core, each serving the
//! connections handed to it for their whole life.
//!
//! Why not the multi-threaded runtime everyone uses: pforte's requests are short and
//! CPU-bound (a signature, a few allocations, a message to the store). On tokio's
//! work-stealing scheduler, every batch of ready connections one worker picks up makes it
//! wake a parked sibling to steal half of it, so a request costs futex wake-ups,
//! inter-processor interrupts and context switches that are worth more than the request on
//! a small machine. A connection that stays on one thread, with its socket registered in
//! that thread's own event loop, pays none of that: measured on the 2-core benchmark machine,
//! client_credentials went from about 80 to about 72 µs of server CPU per request
//! (BENCHMARKS.md has the current figures).
//!
//! The price is that a busy connection cannot move to an idle core. New connections go to
//! the worker with the fewest open ones, and every handler is short: the slow work (password
//! hashing, SQLite) already runs on threads of its own.

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

    pub fn count(&self) -> usize {
        self.inner.workers.len()
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

    #[test]
    fn connections_go_to_the_least_busy_worker_and_run_on_its_thread() {
        let workers = Workers::start(2).unwrap();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<oneshot::Sender<()>>();
        let (names_tx, names_rx) = std::sync::mpsc::channel();
        for _ in 0..4 {
            let (tx, rx) = oneshot::channel::<()>();
            release_tx.send(tx).unwrap();
            let names_tx = names_tx.clone();
            workers.spawn_connection(move || async move {
                let name = std::thread::current().name().map(str::to_owned);
                names_tx.send(name).unwrap();
                let _ = rx.await;
            });
        }
        let mut names: Vec<_> = (0..4)
            .map(|_| names_rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                Some("pforte-worker-0".to_owned()),
                Some("pforte-worker-0".to_owned()),
                Some("pforte-worker-1".to_owned()),
                Some("pforte-worker-1".to_owned()),
            ]
        );
        assert_eq!(workers.open_counts(), [2, 2]);
        drop(release_tx);
        // Ending the connections (dropping their release senders) frees the workers.
        while let Ok(tx) = release_rx.try_recv() {
            drop(tx);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while workers.open_counts() != [0, 0] {
            assert!(
                std::time::Instant::now() < deadline,
                "connections never ended"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn dropping_the_workers_ends_their_threads_and_tasks() {
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
