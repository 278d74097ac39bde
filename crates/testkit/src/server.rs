use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use pforte_core::import;
use pforte_core::secret::PasswordCost;
use pforte_jose::seal::MasterKey;
use pforte_server::{AppState, Clock, ServerConfig, SystemClock};
use pforte_store::AnyStore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{EXAMPLE_REALM, temp_path};

pub struct TestServerOptions {
    /// Defaults to a fresh SQLite file.
    pub database_url: Option<String>,
    /// Realm files to import; defaults to the example realm.
    pub realms: Vec<String>,
    pub master_key: Option<MasterKey>,
    /// Pause before answering a failed login (short by default, to keep tests fast).
    pub login_failure_delay: std::time::Duration,
    /// The server's read timeout (its production default unless a test shortens it).
    pub read_timeout: std::time::Duration,
    /// The server's clock; the system's unless a test wants to move time forward.
    pub clock: Option<Arc<TestClock>>,
}

/// The system clock plus an offset a test can advance: tokens, codes and sessions expire
/// without the test waiting for them.
#[derive(Default)]
pub struct TestClock {
    offset: AtomicI64,
}

impl TestClock {
    pub fn new() -> Arc<TestClock> {
        Arc::new(TestClock::default())
    }

    /// Moves the clock `seconds` forward.
    pub fn advance(&self, seconds: i64) {
        self.offset.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> pforte_core::model::Timestamp {
        SystemClock.now() + self.offset.load(Ordering::SeqCst)
    }
}

impl Default for TestServerOptions {
    fn default() -> Self {
        TestServerOptions {
            database_url: None,
            realms: vec![EXAMPLE_REALM.to_owned()],
            master_key: None,
            login_failure_delay: std::time::Duration::from_millis(10),
            read_timeout: ServerConfig::new(String::new()).read_timeout,
            clock: None,
        }
    }
}

/// pforte in-process on 127.0.0.1:0, driven over real HTTP.
pub struct TestServer {
    pub base_url: String,
    pub state: AppState,
    pub store: Arc<AnyStore>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(TestServerOptions::default()).await
    }

    pub async fn start_with(options: TestServerOptions) -> TestServer {
        let url = options.database_url.unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                temp_path("test").with_extension("db").display()
            )
        });
        let store = Arc::new(AnyStore::connect(&url).await.unwrap());
        let rng = pforte_server::system_rng();
        for (i, realm) in options.realms.iter().enumerate() {
            let prepared = import::prepare_import(
                &*store,
                realm.as_bytes(),
                &format!("realm-{i}.json"),
                now(),
                PasswordCost::MINIMUM,
                &*rng,
                &[],
            )
            .await
            .unwrap();
            import::apply_import(&*store, prepared).await.unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let master = options
            .master_key
            .unwrap_or_else(|| MasterKey::generate().unwrap());
        let mut config = ServerConfig::new(base_url.clone());
        config.dev_mode = true;
        config.password_cost = PasswordCost::MINIMUM;
        config.login_failure_delay = options.login_failure_delay;
        config.read_timeout = options.read_timeout;
        let clock: Arc<dyn Clock> = match options.clock {
            Some(clock) => clock,
            None => Arc::new(SystemClock),
        };
        let state = AppState::with_clock(store.clone(), config, master, clock);
        let (tx, rx) = oneshot::channel();
        let serving = state.clone();
        let task = tokio::spawn(async move {
            pforte_server::serve(listener, serving, shared_workers(), async {
                let _ = rx.await;
            })
            .await
        });
        TestServer {
            base_url,
            state,
            store,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Stops accepting, waits for in-flight requests.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The connection workers of every test server in this process: two, like the benchmark
/// machine's cores, started once (a server does not own them, so a test's end does not
/// stop another test's connections).
pub fn shared_workers() -> &'static pforte_server::Workers {
    static WORKERS: std::sync::OnceLock<pforte_server::Workers> = std::sync::OnceLock::new();
    WORKERS.get_or_init(|| pforte_server::Workers::start(2).unwrap())
}

fn now() -> i64 {
    pforte_server::Clock::now(&pforte_server::SystemClock)
}
