//! Argon2id verification on a small pool of dedicated threads: a burst of logins queues
//! instead of running all at once. Dedicated threads (not `spawn_blocking`) also keep
//! memory flat: each verification allocates its full memory cost, and allocations freed on
//! many short-lived blocking threads stay cached in as many malloc arenas (measured:
//! 570 MiB RSS under a login burst with `spawn_blocking`).
//!
//! The queue is bounded: every login POST on a valid flow costs one verification (unknown
//! users too, for equal timing), so an unbounded queue would let one client park any
//! number of them in memory, and real logins would wait behind them. A full queue answers
//! [`PasswordVerdict::Busy`] at once.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};

use pforte_core::login::{PasswordCheck, PasswordVerdict};
use pforte_core::rng::Rng;
use pforte_core::secret::{self, PasswordCost};
use tokio::sync::oneshot;

struct Job {
    password: String,
    phc: Option<String>,
    reply: oneshot::Sender<bool>,
}

#[derive(Clone)]
pub struct PasswordVerifier {
    jobs: SyncSender<Job>,
}

/// Verifications that may wait per thread: at tens of milliseconds each, a full queue
/// still answers within about a second.
pub const QUEUE_PER_THREAD: usize = 16;

impl PasswordVerifier {
    pub fn new(threads: usize, cost: PasswordCost, rng: Arc<dyn Rng>) -> Self {
        Self::with_queue(threads, threads.max(1) * QUEUE_PER_THREAD, cost, rng)
    }

    /// `queue`: how many verifications may wait for a free thread.
    pub fn with_queue(threads: usize, queue: usize, cost: PasswordCost, rng: Arc<dyn Rng>) -> Self {
        let (jobs, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        // A hash of nothing in particular, verified when the account does not exist so
        // that the answer takes as long as for a real account. Made on first use.
        let dummy: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
        for i in 0..threads.max(1) {
            let (rx, dummy, rng) = (rx.clone(), dummy.clone(), rng.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("pforte-argon2-{i}"))
                .spawn(move || worker(&rx, &dummy, cost, &*rng));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password verification thread");
            }
        }
        PasswordVerifier { jobs }
    }
}

fn worker(rx: &Mutex<Receiver<Job>>, dummy: &OnceLock<String>, cost: PasswordCost, rng: &dyn Rng) {
    loop {
        // The lock is held only while waiting for the next job, never while hashing.
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let ok = match &job.phc {
            Some(phc) => secret::verify_password(&job.password, phc),
            None => {
                let phc = dummy.get_or_init(|| {
                    secret::hash_password("pforte-dummy-password", cost, rng).unwrap_or_default()
                });
                let _ = secret::verify_password(&job.password, phc);
                false
            }
        };
        let _ = job.reply.send(ok);
    }
}

impl PasswordCheck for PasswordVerifier {
    async fn verify(&self, password: String, phc: Option<String>) -> PasswordVerdict {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            password,
            phc,
            reply,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return PasswordVerdict::Busy,
            // No thread left to check anything: no password matches.
            Err(TrySendError::Disconnected(_)) => return PasswordVerdict::NoMatch,
        }
        match answer.await {
            Ok(true) => PasswordVerdict::Match,
            Ok(false) | Err(_) => PasswordVerdict::NoMatch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let rng = crate::system_rng();
        // Slow enough (tens of milliseconds) that the burst is queued long before the
        // first check ends.
        let cost = PasswordCost {
            memory_kib: 16 * 1024,
            iterations: 4,
        };
        let phc = secret::hash_password("pw", cost, &*rng).unwrap();
        let verifier = PasswordVerifier::with_queue(1, 2, cost, rng);
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let (v, phc) = (verifier.clone(), phc.clone());
            burst.spawn(async move { v.verify("pw".into(), Some(phc)).await });
        }
        let verdicts = burst.join_all().await;
        let count = |want| verdicts.iter().filter(|v| **v == want).count();
        // One on the thread and two waiting (more only if this thread stalled for a whole
        // check); the rest are turned away at once, not queued.
        let (matched, busy) = (count(PasswordVerdict::Match), count(PasswordVerdict::Busy));
        assert!(matched >= 1 && busy >= 1, "{verdicts:?}");
        assert_eq!(matched + busy, 12, "{verdicts:?}");
        // Once the queue has drained, checks are taken again.
        assert_eq!(
            verifier.verify("pw".into(), Some(phc.clone())).await,
            PasswordVerdict::Match
        );
        assert_eq!(
            verifier.verify("other".into(), Some(phc)).await,
            PasswordVerdict::NoMatch
        );
    }
}
