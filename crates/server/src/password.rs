//! Argon2id verification on a small pool of dedicated threads: a burst of logins queues
//! instead of running all at once. Dedicated threads (not `spawn_blocking`) also keep
//! memory flat: each verification allocates its full memory cost, and allocations freed on
//! many short-lived blocking threads stay cached in as many malloc arenas (measured:
//! 570 MiB RSS under a login burst with `spawn_blocking`).

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

use pforte_core::login::PasswordCheck;
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
    jobs: Sender<Job>,
}

impl PasswordVerifier {
    pub fn new(threads: usize, cost: PasswordCost, rng: Arc<dyn Rng>) -> Self {
        let (jobs, rx) = channel::<Job>();
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
    async fn verify(&self, password: String, phc: Option<String>) -> bool {
        let (reply, answer) = oneshot::channel();
        if self
            .jobs
            .send(Job {
                password,
                phc,
                reply,
            })
            .is_err()
        {
            return false;
        }
        answer.await.unwrap_or(false)
    }
}
