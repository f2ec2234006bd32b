//! End-to-end tests: each starts the real service on 127.0.0.1:0 over a database of its
//! own and talks SOAP and REST to it over HTTP. The database is an SQLite file in a temp
//! dir, or, with `SOAP_PASSWD_TEST_PG` set to a PostgreSQL server's URL, a database
//! created on that server for the test (`testdb`): the same tests, either backend.

mod attacks;
mod batch;
mod concurrency;
mod config;
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
mod metrics;
mod model;
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
mod testdb;
mod tls;
mod trail;
mod wsi;
