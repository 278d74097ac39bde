//! The accept loop: HTTP/1.1 connections served by hyper, with a read timeout and graceful
//! shutdown.
//!
//! `axum::serve` offers no way to configure hyper's connection, and so no timeout: a client
//! that sends half a request header, or opens connections and stays silent, would hold
//! each connection (a task and a file descriptor) for ever. It also serves every connection
//! through hyper-util's HTTP/1-or-HTTP/2 detection; pforte speaks HTTP/1.1 (a reverse proxy
//! in front terminates TLS and HTTP/2) and never upgrades a connection, so hyper's HTTP/1
//! connection is used directly.
//!
//! Connections are accepted here and served on the connection workers (`workers.rs`).

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::timeout::TimeoutBody;

use crate::headers::security_headers;
use crate::routes::BODY_LIMIT;
use crate::workers::Workers;

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting, lets every
/// open connection finish its in-flight request and close, and returns when all have.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    workers: &Workers,
    read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's header-read timeout also runs while a kept-alive connection waits for its next
    // request, so it is the idle timeout as well.
    http.timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    // `stopping` tells connections to wind down; every connection task holds a clone of
    // `open`, so `all_closed.closed()` resolves when the last one has ended.
    let (stopping_tx, stopping_rx) = watch::channel(false);
    let (all_closed, open) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) if is_per_connection(&err) => continue,
                Err(err) => {
                    // Out of file descriptors and the like: the loop must neither spin nor
                    // end the server; the condition usually passes.
                    tracing::error!(%err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // The socket moves to the worker's own event loop: registered there, its readiness
        // wakes the worker directly instead of passing through this runtime.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => {
                tracing::debug!(%err, "a new connection could not be handed to a worker");
                continue;
            }
        };
        let (http, app, stopping, open) =
            (http.clone(), app.clone(), stopping_rx.clone(), open.clone());
        workers.spawn_connection(move || async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => connection(http, read_timeout, stream, app, stopping, open).await,
                Err(err) => tracing::debug!(%err, "a worker could not take a connection"),
            }
        });
    }
    drop(listener);
    // Err only when no connection is open, so there is no one to tell.
    let _ = stopping_tx.send(true);
    drop(open);
    all_closed.closed().await;
    Ok(())
}

async fn connection(
    http: hyper::server::conn::http1::Builder,
    read_timeout: Duration,
    stream: TcpStream,
    app: Router,
    mut stopping: watch::Receiver<bool>,
    _open: watch::Receiver<()>,
) {
    // A response is written with one writev; Nagle's algorithm could only hold back the
    // tail of a large one.
    let _ = stream.set_nodelay(true);
    // The middleware every response gets wraps the router here, once: `Router::layer` would
    // wrap each route in a boxed service of its own, which every request clones and whose
    // future it boxes, once per layer. A body that stalls for longer than the read timeout
    // fails to read (400).
    let app = app.map_request(move |req: Request<Incoming>| {
        req.map(|body| Body::new(TimeoutBody::new(read_timeout, body)))
    });
    let service = TowerToHyperService::new(
        ServiceBuilder::new()
            .layer(security_headers())
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .service(app),
    );
    let mut conn = std::pin::pin!(http.serve_connection(TokioIo::new(stream), service));
    let stop = async move {
        // Err: the accept loop is gone, which means stop as well.
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    tokio::select! {
        biased;
        result = conn.as_mut() => log_end(result),
        () = stop => {
            conn.as_mut().graceful_shutdown();
            log_end(conn.await);
        }
    }
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(err) = result {
        // A client that times out, disconnects mid-request or sends garbage is not an error
        // of the server.
        tracing::debug!(%err, "connection ended with an error");
    }
}

/// Accept errors about one connection that is already gone, not about the listener.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
    )
}
