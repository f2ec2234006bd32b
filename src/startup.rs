//! Building the whole application from [`Settings`]: store, hasher, audit writer and the
//! HTTP server bound to a listener, so tests can bind port 0 and read the real port.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::web;

use crate::config::Settings;
use crate::crypto::PasswordHasher;
use crate::http::{self, AppState, ServerOptions};
use crate::notify::Mailer;
use crate::service::Service;
use crate::store::{AuditSink, AuditWriter, Store, StoreError, Upkeep};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open database {path}: {source}")]
    Database { path: String, source: StoreError },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot prepare the password hasher: {0}")]
    Hasher(#[from] crate::crypto::CryptoError),
    #[error("{0}")]
    Other(String),
}

/// A built, bound, not yet running service.
pub struct Application {
    port: u16,
    server: Server,
    /// The `--metrics-bind` listener's server and port.
    metrics: Option<(Server, u16)>,
    audit_writer: AuditWriter,
    store: Store,
    /// The mail sender, when `--smtp-url` is given.
    mailer: Option<Mailer>,
    shutdown_timeout: Duration,
}

/// Opens the database at the settings' path.
pub fn open_store(settings: &Settings) -> Result<Store, StartupError> {
    // Readers run concurrently in WAL mode; one connection per blocking worker that can
    // be busy at once is plenty.
    let connections = (settings.workers * 2 + settings.hash_slots).max(4) as u32;
    Store::open(&settings.db, connections).map_err(|source| StartupError::Database {
        path: settings.db.to_string(),
        source,
    })
}

impl Application {
    /// Opens the store, prepares the hasher and binds the listener.
    pub fn build(settings: &Settings) -> Result<Application, StartupError> {
        let store = open_store(settings)?;
        Application::build_with_store(settings, store)
    }

    pub fn build_with_store(
        settings: &Settings,
        store: Store,
    ) -> Result<Application, StartupError> {
        settings
            .hash
            .check_configured()
            .map_err(StartupError::Hasher)?;
        let hasher = PasswordHasher::new(
            settings.hash,
            settings.hash_slots,
            settings.hash_queue,
            settings.hash_wait,
        )
        .map_err(StartupError::Hasher)?;
        let locks = std::sync::Arc::new(crate::store::LockCache::default());
        let upkeep = Upkeep {
            policy: settings.defences.policy.clone(),
            retention: settings.audit_retention,
            locks: locks.clone(),
        };
        let (audit, audit_writer) =
            AuditSink::start(&store, upkeep).map_err(|e| StartupError::Other(e.to_string()))?;
        warn_of_costlier_hashes(&store, settings);
        let service = Service::new(
            store.clone(),
            hasher,
            audit,
            settings.defences.clone(),
            locks,
        )
        .with_reset_ttl(settings.reset_ttl);
        let listener = TcpListener::bind(&settings.bind).map_err(|source| StartupError::Bind {
            addr: settings.bind.clone(),
            source,
        })?;
        let local = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: settings.bind.clone(),
            source,
        })?;
        let port = local.port();
        let state = web::Data::new(AppState {
            service,
            body_limit: settings.body_limit,
            body_timeout: settings.body_timeout,
            limits: settings.limits,
            public_url: settings.public_url.clone(),
            tls: settings.tls.is_some(),
            metrics_elsewhere: settings.metrics_bind.is_some(),
            trust_forwarded_host: settings.trust_forwarded_host,
            trusted_proxies: settings.trusted_proxies.clone(),
            local_host: local.to_string(),
        });
        // Proxies and allowlisted relays carry many clients' connections.
        let exempt = settings
            .trusted_proxies
            .iter()
            .chain(&settings.defences.allowlist)
            .copied()
            .collect();
        let options = ServerOptions {
            workers: settings.workers,
            max_connections: settings.max_connections,
            keep_alive: settings.keep_alive,
            head_timeout: settings.head_timeout,
            shutdown_timeout: settings.shutdown_timeout,
            max_connections_per_address: settings.max_connections_per_address,
            exempt,
        };
        let metrics = match &settings.metrics_bind {
            Some(addr) => Some(metrics_server(addr, state.clone())?),
            None => None,
        };
        let server = http::build_server(listener, state, options, settings.tls.clone()).map_err(
            |source| StartupError::Bind {
                addr: settings.bind.clone(),
                source,
            },
        )?;
        if settings.mail.is_some() && settings.public_url.is_none() {
            log::warn!(
                "mail: without --public-url, a mailed reset link takes the host of the request \
                 that asked for it (its Host header); set --public-url to the address users \
                 reach, so that no caller can have links to another host mailed"
            );
        }
        let mailer = match &settings.mail {
            Some(mail) => Some(
                Mailer::start(store.clone(), mail.clone())
                    .map_err(|e| StartupError::Other(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Application {
            port,
            server,
            metrics,
            audit_writer,
            store,
            mailer,
            shutdown_timeout: settings.shutdown_timeout,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port `/metrics` is served on when `--metrics-bind` moved it.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(_, port)| *port)
    }

    /// A handle to stop the server (tests, signals).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGINT/SIGTERM or the handle), then flushes the audit trail.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let signals = tokio::spawn(async move {
            let name = wait_for_stop_signal().await;
            log::info!("{name} received: stopping gracefully (in-flight requests finish)");
            handle.stop(true).await;
        });
        let metrics = self.metrics.map(|(server, _)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let result = self.server.await;
        signals.abort();
        if let Some((handle, task)) = metrics {
            handle.stop(false).await;
            let _ = task.await;
        }
        if let Some(mailer) = self.mailer {
            mailer.stop(self.shutdown_timeout).await;
        }
        let writer = self.audit_writer;
        let store = self.store;
        // No request runs any more: write the queued audit rows, then fold the WAL into
        // the database file so it is complete on its own.
        let flushed = tokio::task::spawn_blocking(move || {
            writer.finish();
            store.checkpoint()
        });
        match tokio::time::timeout(Duration::from_secs(90), flushed).await {
            Ok(Ok(Ok(()))) => {
                log::info!(
                    "stopped: in-flight requests finished, audit trail flushed, database checkpointed"
                );
            }
            Ok(Ok(Err(e))) => log::warn!("stopped; the final checkpoint failed: {e}"),
            _ => log::warn!("stopped; the audit trail could not be flushed in time"),
        }
        result
    }
}

/// The `--metrics-bind` listener: `/metrics` alone, on one worker.
fn metrics_server(addr: &str, state: web::Data<AppState>) -> Result<(Server, u16), StartupError> {
    let bind_error = |source| StartupError::Bind {
        addr: addr.to_string(),
        source,
    };
    let listener = TcpListener::bind(addr).map_err(bind_error)?;
    let port = listener.local_addr().map_err(bind_error)?.port();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(state.clone())
            .configure(http::configure_metrics)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .map_err(bind_error)?
    .run();
    Ok((server, port))
}

/// Warns, in the background, of stored hashes costlier to verify than the configured
/// parameters (imported before `import` refused them, or the parameters were lowered):
/// a wrong password for those users takes longer than for others until they sign in
/// once and are re-hashed.
fn warn_of_costlier_hashes(store: &Store, settings: &Settings) {
    let (store, configured) = (store.clone(), settings.hash);
    let _ = std::thread::Builder::new()
        .name("hash-census".into())
        .spawn(move || match store.count_costlier_hashes(configured) {
            Ok(0) => {}
            Ok(n) => log::warn!(
                "{n} stored password hashes cost more to verify than the configured argon2 \
                 parameters ({configured}); each is re-hashed at its user's next sign-in \
                 (raise --argon2-memory/--argon2-iterations to match them instead)"
            ),
            Err(e) => log::warn!("could not check the stored hashes' parameters: {e}"),
        });
}

/// Waits for SIGTERM or SIGINT (Ctrl-C); returns its name.
async fn wait_for_stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => {
                log::warn!("cannot listen for signals; stop the server with its handle");
                std::future::pending().await
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
