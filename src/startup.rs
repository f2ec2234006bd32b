//! Building the whole application from [`Settings`]: store, hasher, audit writer and the
//! HTTP server bound to a listener, so tests can bind port 0 and read the real port.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};

use crate::config::Settings;
use crate::crypto::PasswordHasher;
use crate::http::{self, AppState};
use crate::service::Service;
use crate::store::{AuditSink, AuditWriter, Store, StoreError};

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
    Hasher(String),
    #[error("{0}")]
    Other(String),
}

/// A built, bound, not yet running service.
pub struct Application {
    port: u16,
    server: Server,
    audit_writer: AuditWriter,
}

/// Opens the database at the settings' path.
pub fn open_store(settings: &Settings) -> Result<Store, StartupError> {
    // Readers run concurrently in WAL mode; one connection per blocking worker that can
    // be busy at once is plenty.
    let connections = (settings.workers * 2 + settings.hash_slots).max(4) as u32;
    Store::open(&settings.db, connections).map_err(|source| StartupError::Database {
        path: settings.db.display().to_string(),
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
        let hasher = PasswordHasher::new(
            settings.hash,
            settings.hash_slots,
            settings.hash_queue,
            settings.hash_wait,
        )
        .map_err(StartupError::Hasher)?;
        let (audit, audit_writer) =
            AuditSink::start(&store).map_err(|e| StartupError::Other(e.to_string()))?;
        let service = Service::new(store, hasher, audit, settings.defences.clone());
        let listener = TcpListener::bind(&settings.bind).map_err(|source| StartupError::Bind {
            addr: settings.bind.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: settings.bind.clone(),
                source,
            })?
            .port();
        let state = web::Data::new(AppState {
            service,
            body_limit: settings.body_limit,
            limits: settings.limits,
            public_url: settings.public_url.clone(),
            trust_forwarded_host: settings.trust_forwarded_host,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .configure(http::configure)
        })
        .workers(settings.workers.max(1))
        .shutdown_timeout(10)
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            addr: settings.bind.clone(),
            source,
        })?
        .run();
        Ok(Application {
            port,
            server,
            audit_writer,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server (tests, signals).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGINT/SIGTERM or the handle), then flushes the audit trail.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        let writer = self.audit_writer;
        // Every sink lived in the app state, dropped with the server's workers.
        let flushed = tokio::task::spawn_blocking(move || writer.finish());
        if tokio::time::timeout(Duration::from_secs(10), flushed)
            .await
            .is_err()
        {
            log::warn!("audit writer did not finish within 10 s");
        }
        result
    }
}
