//! End-to-end tests: each starts the real service on 127.0.0.1:0 over a temp SQLite file
//! and talks SOAP to it over HTTP.

mod helpers;
mod smoke;
mod faults;
mod envelope;
mod permissions;
mod policy;
mod concurrency;
mod import;
mod logs;
