//! HTTP: routes, body limits, request ids and the one log line per call.
//!
//! This layer reads the body (bounded), hands the bytes to `soap`, the domain request to
//! the `service`, and writes whatever `soap` renders. It knows neither XML nor SQL.

mod routes;

pub use routes::{AppState, configure};
