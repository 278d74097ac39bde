use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use std::time::Duration;

use pforte_core::Timestamp;
use pforte_core::rng::Rng;
use pforte_core::secret::PasswordCost;
use pforte_jose::seal::MasterKey;
use pforte_store::AnyStore;

use crate::keycache::KeyCache;
use crate::password::PasswordVerifier;

/// The server reads the clock here and nowhere else, and passes `now` into `core`.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Public base URL without trailing slash, e.g. `https://id.example.com`.
    pub base_url: String,
    /// Allow cookies without `Secure` (only for http://localhost development).
    pub dev_mode: bool,
    /// Argon2id cost for hashing new passwords (verification reads the cost from the hash).
    pub password_cost: PasswordCost,
    /// Pause before answering a failed login.
    pub login_failure_delay: Duration,
    /// How long a client may keep the server waiting: for a request's header (on a kept-alive
    /// connection also for the next request), and between the pieces of a request body.
    /// A client that takes longer loses its connection; without this, slow or silent
    /// clients could hold connections (and file descriptors) open for ever.
    pub read_timeout: Duration,
}

impl ServerConfig {
    pub fn new(base_url: String) -> Self {
        ServerConfig {
            base_url,
            dev_mode: false,
            password_cost: PasswordCost::PRODUCTION,
            login_failure_delay: Duration::from_millis(500),
            read_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<AnyStore>,
    pub config: Arc<ServerConfig>,
    pub keys: KeyCache,
    pub clock: Arc<dyn Clock>,
    pub rng: Arc<dyn Rng>,
    pub passwords: PasswordVerifier,
}

impl AppState {
    pub fn new(store: Arc<AnyStore>, config: ServerConfig, master: MasterKey) -> Self {
        AppState::with_clock(store, config, master, Arc::new(SystemClock))
    }

    /// As [`AppState::new`], reading the time from `clock` (tests move it forward to
    /// expire tokens and sessions without waiting).
    pub fn with_clock(
        store: Arc<AnyStore>,
        config: ServerConfig,
        master: MasterKey,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let rng = system_rng();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        AppState {
            keys: KeyCache::new(store.clone(), master, clock.clone()),
            store,
            passwords: PasswordVerifier::new(cores, config.password_cost, rng.clone()),
            config: Arc::new(config),
            clock,
            rng,
        }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// `Secure` cookies, except in dev mode on http://localhost (or a loopback address),
    /// where browsers would otherwise drop them.
    pub fn secure_cookies(&self) -> bool {
        !(self.config.dev_mode && is_plain_http_loopback(&self.config.base_url))
    }

    pub fn issuer(&self, realm: &str) -> String {
        format!("{}/realms/{realm}", self.config.base_url)
    }
}

/// `http://localhost`, `http://127.x.y.z` or `http://[::1]`, with any port and path. Any
/// other plain-http host is reachable by others, and dev mode does not make its cookies
/// safe to send in clear.
pub fn is_plain_http_loopback(base_url: &str) -> bool {
    let Some(rest) = base_url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(h, _)| h),
        None => authority.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(crate) fn system_rng() -> Arc<dyn Rng> {
    Arc::new(crate::random::SystemRng::new())
}

#[cfg(test)]
mod tests {
    use super::is_plain_http_loopback;

    #[test]
    fn only_plain_http_on_loopback_may_drop_secure() {
        for url in [
            "http://localhost",
            "http://localhost:8080",
            "http://LOCALHOST:8080/",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:8080/x",
        ] {
            assert!(is_plain_http_loopback(url), "{url}");
        }
        for url in [
            "https://localhost:8080",
            "http://id.example.test",
            "http://10.0.0.5:8080",
            "http://localhost.example.com",
            "http://localhost@evil.example",
            "http://127.0.0.1.evil.example",
            "http://[::2]:8080",
            "",
        ] {
            assert!(!is_plain_http_loopback(url), "{url}");
        }
    }
}
