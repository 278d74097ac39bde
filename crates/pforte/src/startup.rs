//! What each subcommand does, start to finish. The server itself lives in `pforte-server`;
//! here are only the process concerns: logging, files, signals, exit codes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use pforte_core::Store;
use pforte_core::import;
use pforte_core::secret::PasswordCost;
use pforte_server::{AppState, ServerConfig};
use pforte_store::AnyStore;

use crate::config::{Config, LogFormat};
use crate::master_key;

/// The realm `pforte dev` runs with; the same file as `examples/realm.json`.
const EXAMPLE_REALM: &str = include_str!("../../../examples/realm.json");

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

async fn connect(config: &Config) -> Result<AnyStore> {
    if config.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
    }
    AnyStore::connect(&config.database_url).await.map_err(|e| {
        anyhow!("{e}\n  fix: check PFORTE_DATABASE_URL (or `database_url`) and that the database server is running")
    })
}

fn now() -> i64 {
    pforte_server::Clock::now(&pforte_server::SystemClock)
}

/// Realm files named on the command line: files as given, folders by their `*.json`
/// entries in name order (so that application order is reproducible).
fn realm_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot read the import folder {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            entries.sort();
            files.extend(entries);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            bail!(
                "import path {} does not exist\n  fix: pass a realm JSON file or a folder of them",
                path.display()
            );
        }
    }
    Ok(files)
}

/// Says what went wrong with a realm file, how to fix it, and what was written (`written`).
fn import_error(e: &import::ImportFailure, written: &str) -> anyhow::Error {
    let fix = match e {
        import::ImportFailure::Store {
            error: pforte_core::StoreError::Conflict(_),
            ..
        } => {
            "a user's username or email belongs to another user of the realm in the database; change it in the file or in the database, and import again"
        }
        import::ImportFailure::Store { .. } => {
            "check that the database is reachable (PFORTE_DATABASE_URL) and import again"
        }
        import::ImportFailure::Invalid(_) => {
            "correct the realm file at the path(s) named above and import again"
        }
    };
    anyhow!("{e}\n  fix: {fix}; {written}")
}

/// Imports realm files (source name, content) all or nothing: every file is parsed,
/// validated and converted before the first one is written; files of one realm are applied
/// in order, each prepared on top of the one before.
async fn import_all(store: &AnyStore, files: &[(String, Vec<u8>)]) -> Result<()> {
    let rng = pforte_server::system_rng();
    let now = now();
    let nothing = match files.len() {
        1 => "nothing of the file was written",
        _ => "nothing of the files was written",
    };
    let mut prepared: Vec<import::PreparedImport> = Vec::with_capacity(files.len());
    for (source, bytes) in files {
        // A later file of a realm (Keycloak's directory export: the realm file, then its
        // users files) is prepared on top of the earlier ones.
        let file = import::prepare_import(
            store,
            bytes,
            source,
            now,
            PasswordCost::PRODUCTION,
            &*rng,
            &prepared,
        )
        .await
        .map_err(|e| import_error(&e, nothing))?;
        for warning in &file.warnings {
            tracing::warn!("{warning}");
        }
        prepared.push(file);
    }
    let mut written: Vec<String> = Vec::new();
    for file in prepared {
        let source = file.source.clone();
        let outcome = import::apply_import(store, file).await.map_err(|e| {
            if written.is_empty() {
                import_error(&e, nothing)
            } else {
                import_error(
                    &e,
                    &format!(
                        "nothing of {source} was written, but the files before it were: {}",
                        written.join(", ")
                    ),
                )
            }
        })?;
        tracing::info!(realm = %outcome.realm, source, "realm imported");
        written.push(source);
    }
    Ok(())
}

async fn import_files(store: &AnyStore, paths: &[PathBuf]) -> Result<()> {
    let mut files = Vec::new();
    for file in realm_files(paths)? {
        let bytes = std::fs::read(&file)
            .with_context(|| format!("cannot read realm file {}", file.display()))?;
        files.push((file.display().to_string(), bytes));
    }
    import_all(store, &files).await
}

/// What a starting server imports before it listens.
#[derive(Clone, Copy)]
enum Seed<'a> {
    Files(&'a [PathBuf]),
    /// `pforte dev`: the example realm compiled into the binary.
    Example,
}

pub async fn serve(config: Config, imports: &[PathBuf]) -> Result<()> {
    run_server(config, Seed::Files(imports)).await
}

pub async fn dev(mut config: Config) -> Result<()> {
    // `dev` imports a realm whose credentials are published (alice/alice, a client secret
    // in the banner) and sets cookies without `Secure`: for this machine only, never into a
    // shared database or onto an address others reach, whatever the environment says.
    if !config.listen.ip().is_loopback() {
        bail!(
            "pforte dev listens only on a loopback address, not {}\n  fix: unset PFORTE_LISTEN (or use 127.0.0.1:<port>); for anything else run `pforte serve`",
            config.listen
        );
    }
    let base_is_local = config
        .base_url
        .as_deref()
        .is_none_or(pforte_server::is_plain_http_loopback);
    if !base_is_local {
        bail!(
            "pforte dev serves only http://localhost or http://127.0.0.1, not base URL {}\n  fix: unset PFORTE_BASE_URL; for anything else run `pforte serve`",
            config.base_url.as_deref().unwrap_or_default()
        );
    }
    // Checked before connecting: connecting to PostgreSQL already migrates its schema.
    if AnyStore::backend_of(&config.database_url) != Some("sqlite") {
        bail!(
            "pforte dev keeps its data in SQLite only: it would write its demo realm (alice/alice) into the database of PFORTE_DATABASE_URL\n  fix: unset PFORTE_DATABASE_URL; for a shared database run `pforte serve`"
        );
    }
    config.dev_mode = true;
    run_server(config, Seed::Example).await
}

async fn run_server(config: Config, seed: Seed<'_>) -> Result<()> {
    let started = Instant::now();
    init_logging(&config);
    let store = Arc::new(connect(&config).await?);
    let master = load_master_key(&config, &store)?;
    match seed {
        Seed::Files(paths) => import_files(&store, paths).await?,
        Seed::Example => {
            let example = (
                "examples/realm.json".to_owned(),
                EXAMPLE_REALM.as_bytes().to_vec(),
            );
            import_all(&store, &[example]).await?
        }
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}\n  fix: choose a free address with PFORTE_LISTEN",
                config.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let base_url = config
        .base_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let mut server_config = ServerConfig::new(base_url.clone());
    server_config.dev_mode = config.dev_mode;
    let state = AppState::new(store.clone(), server_config, master);
    // Load (or create) every realm's keys now, so the first request does not pay for it
    // and a wrong master key fails the start, not a request.
    for realm in store.list_realms().await? {
        state
            .keys
            .get(&realm)
            .await
            .with_context(|| format!("cannot load the signing keys of realm {}", realm.name))?;
    }
    // Before the ready line: a start that cannot serve must not have said it is ready.
    let workers = pforte_server::Workers::per_core()
        .context("cannot start the threads that serve connections")?;
    tracing::info!(
        %addr,
        %base_url,
        startup_ms = started.elapsed().as_millis() as u64,
        "pforte ready"
    );
    spawn_housekeeping(store.clone());
    let shutdown = shutdown_signal()?;
    // One line on stdout that scripts and tests wait for.
    println!("pforte listening on {addr}, base URL {base_url}");
    if matches!(seed, Seed::Example) {
        print_dev_banner(&base_url);
    } else if config.dev_mode {
        for realm in store.list_realms().await? {
            println!(
                "realm {0}: {1}/realms/{0}/.well-known/openid-configuration",
                realm.name, base_url
            );
        }
    }
    pforte_server::serve(listener, state, &workers, shutdown).await?;
    tracing::info!("pforte stopped");
    Ok(())
}

/// What `pforte dev` offers, read from the example realm (the store keeps only hashes of
/// the secrets, the file has them in clear).
fn print_dev_banner(base_url: &str) {
    let Ok(realm) = serde_json::from_str::<serde_json::Value>(EXAMPLE_REALM) else {
        return;
    };
    let name = realm["realm"].as_str().unwrap_or("demo");
    let issuer = format!("{base_url}/realms/{name}");
    println!("\npforte dev: realm {name}");
    println!("  issuer     {issuer}");
    println!("  discovery  {issuer}/.well-known/openid-configuration");
    for c in realm["clients"].as_array().into_iter().flatten() {
        let id = c["clientId"].as_str().unwrap_or("?");
        match c["secret"].as_str() {
            Some(secret) => println!("  client     {id} (confidential), secret {secret}"),
            None => println!(
                "  client     {id} (public, PKCE S256), redirect {}",
                c["redirectUris"][0].as_str().unwrap_or("-")
            ),
        }
    }
    for u in realm["users"].as_array().into_iter().flatten() {
        let password = u["credentials"][0]["value"].as_str().unwrap_or("-");
        println!(
            "  user       {} / password {password}",
            u["username"].as_str().unwrap_or("?")
        );
    }
    println!("  (the Health-ID simulator and the demo application come with their own issues)\n");
}

/// Purges expired rows every few minutes; a failure is logged and retried next time.
fn spawn_housekeeping(store: Arc<AnyStore>) {
    tokio::spawn(async move {
        let period = std::time::Duration::from_secs(pforte_core::housekeeping::INTERVAL_SECONDS);
        // The first run one period after start: start-up stays free of this work.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tick.tick().await;
            match pforte_core::housekeeping::purge(&*store, now()).await {
                Ok(n) => tracing::debug!(removed = n, "expired rows purged"),
                Err(e) => tracing::warn!(error = %e, "purging expired rows failed"),
            }
        }
    });
}

/// Registers the SIGTERM and SIGINT handlers now (not on first poll), so a signal that
/// arrives right after the ready line is printed already means "shut down gracefully".
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            tracing::info!("shutdown requested; finishing in-flight requests");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutdown requested; finishing in-flight requests");
        })
    }
}

pub async fn import_only(config: Config, paths: &[PathBuf]) -> Result<()> {
    init_logging(&config);
    if paths.is_empty() {
        bail!("nothing to import\n  fix: name realm files or folders: pforte import realm.json");
    }
    let store = connect(&config).await?;
    import_files(&store, paths).await
}

/// The master key. A generated one is refused on PostgreSQL, whose database several nodes
/// may share (the store, not the URL, says which backend it is).
fn load_master_key(config: &Config, store: &AnyStore) -> Result<pforte_jose::seal::MasterKey> {
    master_key::load(&config.master_key, store.backend() == "postgres")
}

fn unknown_realm(name: &str) -> anyhow::Error {
    anyhow!(
        "realm {name} does not exist\n  fix: check the name (realm names are case-sensitive), or import the realm first: pforte import realm.json"
    )
}

pub async fn export(config: Config, realm: &str) -> Result<()> {
    init_logging(&config);
    let store = connect(&config).await?;
    let rep = import::export(&store, realm)
        .await?
        .ok_or_else(|| unknown_realm(realm))?;
    println!("{}", serde_json::to_string_pretty(&rep)?);
    Ok(())
}

pub async fn rotate_keys(config: Config, realm_name: &str) -> Result<()> {
    init_logging(&config);
    let store = connect(&config).await?;
    let master = load_master_key(&config, &store)?;
    let realm = store
        .get_realm(realm_name)
        .await?
        .ok_or_else(|| unknown_realm(realm_name))?;
    let clients = store.list_clients(realm_name).await?;
    let retention = pforte_core::keys::key_retention(&realm, &clients);
    // Make sure there is a key to retire, so a rotation on a fresh database is meaningful.
    pforte_core::keys::load_or_create(&store, &realm, retention, &master, now()).await?;
    let kid = pforte_core::keys::rotate(&store, &realm, retention, &master, now()).await?;
    println!("realm {realm_name}: new active key {kid}");
    Ok(())
}
