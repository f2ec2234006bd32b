//! HTTP: the server (plain or TLS) and its connection limits, routes, body limits, the client's
//! address behind trusted proxies, request ids and the one log line per call.
//!
//! This layer reads the body (bounded), hands the bytes to `soap`, the domain request to
//! the `service`, and writes whatever `soap` renders. It knows neither XML nor SQL.

mod client;
mod routes;
mod server;
mod tls;

pub use client::resolve as resolve_client;
pub use routes::{AppState, configure, configure_metrics};
pub use server::{ServerOptions, build as build_server};
pub use tls::{Tls, TlsError};
