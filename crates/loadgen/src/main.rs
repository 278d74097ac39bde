//! `loadgen`: a closed-loop HTTP/1.1 load generator for OAuth/OIDC token endpoints, used by
//! `bench/run.sh` to measure pforte and its peer under the same load.
//!
//! C workers, each with its own keep-alive connection, run one scenario back to back for a
//! warm-up and then for the measured duration; the result is one JSON line on stdout:
//! `{scenario, target, requests, errors, seconds, rps, p50_ms, p99_ms, …}` where `requests`
//! are the successful requests (flows for `code-flow`) completed in the measured window and
//! `rps` is `requests / seconds`.
//!
//! Exit status 2: the scenario could not be run at all (the single preflight iteration failed,
//! e.g. the endpoint does not exist yet); the reason is on stderr.

// A benchmark binary, not a request path: failing loudly is the right behaviour here, and the
// tests use unwrap freely.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod flow;
mod html;
mod http;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, ValueEnum};
use serde_json::json;

use crate::flow::{Setup, Target};
use crate::http::{Conn, CookieJar, Url, form_encode};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// POST grant_type=client_credentials with client_secret_basic.
    ClientCredentials,
    /// Each worker logs in once (code flow), then refreshes with the newest refresh token.
    Refresh,
    /// The whole browser flow per iteration: authorize, login form, redirect, code exchange.
    CodeFlow,
    /// GET the discovery document: not a goal, a check of the load generator's own ceiling.
    Discovery,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::ClientCredentials => "client-credentials",
            Scenario::Refresh => "refresh",
            Scenario::CodeFlow => "code-flow",
            Scenario::Discovery => "discovery",
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    about = "Closed-loop load generator for OAuth/OIDC providers"
)]
struct Args {
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Which provider this is (selects the login-page adapter of the code flow).
    #[arg(long, value_enum)]
    target: Target,
    /// Issuer URL; its discovery document gives the endpoints not set explicitly.
    #[arg(long)]
    issuer: String,
    #[arg(long)]
    token_endpoint: Option<String>,
    #[arg(long)]
    auth_endpoint: Option<String>,
    /// Concurrent workers (= keep-alive connections).
    #[arg(short = 'c', long, default_value_t = 32)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(short = 'd', long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before the measurement starts (not counted).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seconds before a single request counts as failed.
    #[arg(long, default_value_t = 10.0)]
    request_timeout: f64,
    /// The server's process id: its CPU use over the measured window is reported.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Confidential client for client_credentials.
    #[arg(long, default_value = "bench-cc")]
    cc_client_id: String,
    #[arg(long, default_value = "bench-secret")]
    cc_client_secret: String,
    /// Client of the code flow and of the refresh grant.
    #[arg(long, default_value = "bench-app")]
    app_client_id: String,
    /// Makes the app client confidential (client_secret_basic); without it the client is
    /// public and sends `client_id` in the body.
    #[arg(long)]
    app_client_secret: Option<String>,
    #[arg(long, default_value = "http://127.0.0.1:18099/cb")]
    redirect_uri: String,
    #[arg(long, default_value = "openid")]
    scope: String,
    #[arg(long, default_value = "bench")]
    username: String,
    #[arg(long, default_value = "bench")]
    password: String,
    /// Print each step of the first (preflight) iteration to stderr.
    #[arg(long)]
    trace: bool,
}

fn main() {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let label = format!("{} against {}", args.scenario.name(), args.target.name());
    match runtime.block_on(run(args)) {
        Ok(report) => println!("{report}"),
        Err(Failure::Preflight(e)) => {
            eprintln!("loadgen: {label}: cannot run: {e:#}");
            std::process::exit(2);
        }
        Err(Failure::Other(e)) => {
            eprintln!("loadgen: {label}: {e:#}");
            std::process::exit(1);
        }
    }
}

enum Failure {
    Preflight(anyhow::Error),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

async fn run(args: Args) -> std::result::Result<serde_json::Value, Failure> {
    if args.concurrency == 0
        || args.duration.is_nan()
        || args.duration <= 0.0
        || args.warmup.is_nan()
        || args.warmup < 0.0
    {
        return Err(anyhow!("concurrency and duration must be positive").into());
    }
    let timeout = Duration::from_secs_f64(args.request_timeout.max(0.001));
    let setup = Arc::new(
        setup(&args, timeout)
            .await
            .map_err(|e| Failure::Preflight(e.context("discovery")))?,
    );

    // One iteration alone first: a scenario the target cannot do is reported, not measured.
    let mut conn = Conn::new(timeout);
    preflight(args.scenario, &mut conn, &setup, args.trace)
        .await
        .map_err(Failure::Preflight)?;

    // Per-worker state prepared before the clock starts (refresh: one login per worker).
    let mut seeds = Vec::with_capacity(args.concurrency);
    if args.scenario == Scenario::Refresh {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..args.concurrency {
            let setup = setup.clone();
            set.spawn(async move {
                let mut conn = Conn::new(timeout);
                let mut jar = CookieJar::default();
                let t = flow::code_flow(&mut conn, &setup, &mut jar, false).await?;
                let rt = t
                    .refresh_token
                    .ok_or_else(|| anyhow!("the code flow returned no refresh_token"))?;
                Ok::<_, anyhow::Error>((conn, Some(rt)))
            });
        }
        while let Some(joined) = set.join_next().await {
            let seed = joined
                .map_err(|e| anyhow!("seeding task: {e}"))?
                .context("seeding a worker's refresh token")
                .map_err(Failure::Preflight)?;
            seeds.push(seed);
        }
    } else {
        seeds.extend((0..args.concurrency).map(|_| (Conn::new(timeout), None)));
    }

    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(args.warmup);
    let end = warm_end + Duration::from_secs_f64(args.duration);
    let mut set = tokio::task::JoinSet::new();
    for (conn, seed) in seeds {
        let setup = setup.clone();
        let scenario = args.scenario;
        set.spawn(worker(scenario, setup, conn, seed, warm_end, end));
    }
    // CPU used over the measured window by the server and by this process (Linux /proc).
    let server = args.server_pid.map(|p| p.to_string());
    let ticks = || (cpu_ticks("self"), server.as_deref().and_then(cpu_ticks));
    tokio::time::sleep_until(warm_end.into()).await;
    let before = ticks();
    tokio::time::sleep_until(end.into()).await;
    let after = ticks();
    let cores = |a: Option<u64>, b: Option<u64>| {
        let used = b?.checked_sub(a?)? as f64 / CLOCK_TICKS_PER_SECOND;
        Some((used / args.duration * 100.0).round() / 100.0)
    };
    let loadgen_cpu = cores(before.0, after.0);
    let server_cpu = cores(before.1, after.1);

    let mut total = Stats::default();
    while let Some(joined) = set.join_next().await {
        let stats = joined.map_err(|e| anyhow!("worker task: {e}"))?;
        total.merge(stats);
    }
    let seconds = args.duration;
    total.latencies_us.sort_unstable();
    let rps = total.ok as f64 / seconds;
    let p = |q: f64| percentile_ms(&total.latencies_us, q);
    Ok(json!({
        "scenario": args.scenario.name(),
        "target": args.target.name(),
        "requests": total.ok,
        "errors": total.errors,
        "seconds": seconds,
        "rps": (rps * 10.0).round() / 10.0,
        "p50_ms": p(0.50),
        "p99_ms": p(0.99),
        "max_ms": total.latencies_us.last().map(|&us| f64::from(us) / 1000.0),
        "concurrency": args.concurrency,
        "warmup_seconds": args.warmup,
        "connections": total.connects,
        "server_cpu_cores": server_cpu,
        "loadgen_cpu_cores": loadgen_cpu,
        "reseeds": total.reseeds,
        "error_sample": total.error_sample,
    }))
}

async fn setup(args: &Args, timeout: Duration) -> Result<Setup> {
    let issuer = args.issuer.trim_end_matches('/').to_owned();
    let mut conn = Conn::new(timeout);
    let discovery_url = Url::parse(&format!("{issuer}/.well-known/openid-configuration"))?;
    let doc: Option<serde_json::Value> =
        if args.token_endpoint.is_some() && args.auth_endpoint.is_some() {
            None
        } else {
            let r = conn.get(&discovery_url, &[]).await?;
            if r.status != 200 {
                bail!("{discovery_url}: {}", r.describe());
            }
            Some(serde_json::from_slice(&r.body).context("discovery document is not JSON")?)
        };
    let from_doc = |explicit: &Option<String>, key: &str| -> Result<Url> {
        match explicit {
            Some(u) => Url::parse(u),
            None => {
                let value = doc
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| anyhow!("discovery document has no {key}"))?;
                Url::parse(value)
            }
        }
    };
    let token_endpoint = from_doc(&args.token_endpoint, "token_endpoint")?;
    let auth_endpoint = from_doc(&args.auth_endpoint, "authorization_endpoint")?;
    let issuer = doc
        .as_ref()
        .and_then(|d| d.get("issuer"))
        .and_then(|v| v.as_str())
        .map_or(issuer, str::to_owned);
    let redirect_base = Url::parse(&args.redirect_uri)?.without_query();
    Ok(Setup {
        target: args.target,
        discovery: discovery_url,
        issuer,
        auth_endpoint,
        token_endpoint,
        app_client_id: args.app_client_id.clone(),
        app_basic: args
            .app_client_secret
            .as_deref()
            .map(|s| flow::basic_auth(&args.app_client_id, s)),
        redirect_uri: args.redirect_uri.clone(),
        redirect_base,
        scope: args.scope.clone(),
        username: args.username.clone(),
        password: args.password.clone(),
        cc_body: form_encode([("grant_type", "client_credentials")]).into_bytes(),
        cc_basic: flow::basic_auth(&args.cc_client_id, &args.cc_client_secret),
    })
}

async fn preflight(scenario: Scenario, conn: &mut Conn, setup: &Setup, trace: bool) -> Result<()> {
    match scenario {
        Scenario::ClientCredentials => flow::client_credentials(conn, setup).await,
        Scenario::Discovery => flow::discovery(conn, setup).await,
        Scenario::CodeFlow => flow::code_flow(conn, setup, &mut CookieJar::default(), trace)
            .await
            .map(|_| ()),
        Scenario::Refresh => {
            let t = flow::code_flow(conn, setup, &mut CookieJar::default(), trace)
                .await
                .context("code flow for the first refresh token")?;
            let rt = t
                .refresh_token
                .ok_or_else(|| anyhow!("the code flow returned no refresh_token"))?;
            let next = flow::refresh(conn, setup, &rt).await?;
            if next != rt && flow::refresh(conn, setup, &rt).await.is_ok() {
                // Not a measurement, a finding: rotation should kill the old token.
                eprintln!(
                    "loadgen: warning: {} accepted a rotated-out refresh token again",
                    setup.target.name()
                );
            }
            Ok(())
        }
    }
}

#[derive(Default)]
struct Stats {
    ok: u64,
    errors: u64,
    reseeds: u64,
    connects: u64,
    latencies_us: Vec<u32>,
    error_sample: Option<String>,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.reseeds += other.reseeds;
        self.connects += other.connects;
        self.latencies_us.extend(other.latencies_us);
        if self.error_sample.is_none() {
            self.error_sample = other.error_sample;
        }
    }

    /// Records a finished request if it finished inside the measured window.
    fn record(&mut self, t0: Instant, outcome: &Result<()>, warm_end: Instant, end: Instant) {
        let t1 = Instant::now();
        if t1 < warm_end || t1 > end {
            return;
        }
        match outcome {
            Ok(()) => {
                self.ok += 1;
                let us = t1.duration_since(t0).as_micros();
                self.latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            Err(e) => {
                self.errors += 1;
                if self.error_sample.is_none() {
                    self.error_sample = Some(format!("{e:#}"));
                }
            }
        }
    }
}

async fn worker(
    scenario: Scenario,
    setup: Arc<Setup>,
    mut conn: Conn,
    mut refresh_token: Option<String>,
    warm_end: Instant,
    end: Instant,
) -> Stats {
    let mut stats = Stats {
        latencies_us: Vec::with_capacity(64 * 1024),
        ..Stats::default()
    };
    let mut jar = CookieJar::default();
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let outcome = match scenario {
            Scenario::ClientCredentials => flow::client_credentials(&mut conn, &setup).await,
            Scenario::Discovery => flow::discovery(&mut conn, &setup).await,
            Scenario::CodeFlow => flow::code_flow(&mut conn, &setup, &mut jar, false)
                .await
                .map(|_| ()),
            Scenario::Refresh => {
                let Some(rt) = refresh_token.take() else {
                    // Re-seed after an error: a new login, not measured as a refresh.
                    stats.reseeds += 1;
                    let seeded = flow::code_flow(&mut conn, &setup, &mut jar, false).await;
                    match seeded.map(|t| t.refresh_token) {
                        Ok(Some(rt)) => refresh_token = Some(rt),
                        Ok(None) => {
                            let e =
                                Err(anyhow!("re-seed: the code flow returned no refresh_token"));
                            stats.record(t0, &e, warm_end, end);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(e) => {
                            stats.record(t0, &Err(e.context("re-seed")), warm_end, end);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    continue;
                };
                match flow::refresh(&mut conn, &setup, &rt).await {
                    Ok(next) => {
                        refresh_token = Some(next);
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        let failed = outcome.is_err();
        stats.record(t0, &outcome, warm_end, end);
        if failed {
            // Do not spin on a failing server.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    stats.connects = conn.connects;
    stats
}

/// `USER_HZ`: 100 on every Linux architecture that matters here.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU ticks of a process (`self` or a pid), all threads.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds (3 decimals).
fn percentile_ms(sorted_us: &[u32], q: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let rank = (q * sorted_us.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted_us.len()) - 1;
    Some(f64::from(sorted_us[i]) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 0.5), Some(50.0));
        assert_eq!(percentile_ms(&v, 0.99), Some(99.0));
        assert_eq!(percentile_ms(&[7], 0.99), Some(0.007));
        assert_eq!(percentile_ms(&[], 0.5), None);
    }

    #[test]
    fn reads_own_cpu_time() {
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(cpu_ticks("self").is_some());
        }
        assert_eq!(cpu_ticks("999999999"), None);
    }
}
