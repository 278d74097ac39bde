//! Argon2id verification off the async worker threads, with bounded concurrency: a burst
//! of logins queues instead of exhausting memory (each verification holds its memory cost).

use std::sync::Arc;

use pforte_core::login::PasswordCheck;
use pforte_core::rng::Rng;
use pforte_core::secret::{self, PasswordCost};
use tokio::sync::{OnceCell, Semaphore};

#[derive(Clone)]
pub struct PasswordVerifier {
    permits: Arc<Semaphore>,
    /// A hash of nothing in particular, verified when the account does not exist so that
    /// the answer takes as long as for a real account. Made on first use, not at start-up.
    dummy: Arc<OnceCell<String>>,
    cost: PasswordCost,
    rng: Arc<dyn Rng>,
}

impl PasswordVerifier {
    pub fn new(concurrency: usize, cost: PasswordCost, rng: Arc<dyn Rng>) -> Self {
        PasswordVerifier {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: Arc::new(OnceCell::new()),
            cost,
            rng,
        }
    }

    async fn dummy(&self) -> String {
        let cost = self.cost;
        let rng = self.rng.clone();
        self.dummy
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || {
                    secret::hash_password("pforte-dummy-password", cost, &*rng).unwrap_or_default()
                })
                .await
                .unwrap_or_default()
            })
            .await
            .clone()
    }
}

impl PasswordCheck for PasswordVerifier {
    async fn verify(&self, password: String, phc: Option<String>) -> bool {
        let (phc, real) = match phc {
            Some(h) => (h, true),
            None => (self.dummy().await, false),
        };
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let ok = tokio::task::spawn_blocking(move || secret::verify_password(&password, &phc))
            .await
            .unwrap_or(false);
        ok && real
    }
}
