//! End-to-end tests: each starts the real service on 127.0.0.1:0 over a temp SQLite file
//! and talks SOAP to it over HTTP.

mod attacks;
mod batch;
mod concurrency;
mod docs;
mod envelope;
mod faults;
mod fixtures;
mod form;
#[path = "../harness/mod.rs"]
mod harness;
mod hashing;
mod helpers;
mod import;
mod interop;
mod leniency;
mod lockout;
mod logs;
mod mail;
mod parity;
mod permissions;
mod policy;
mod reset;
mod resilience;
mod rest;
mod smoke;
mod soapui;
mod status;
mod temporary;
mod trail;
mod wsi;
