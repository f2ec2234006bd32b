//! soap-passwd: the `UpdateUserPassword` SOAP call, with department-tree permissions,
//! a per-account password policy, argon2id hashes and an audit trail.
//!
//! A request flows one way: [`http`] → [`soap`] → [`service`] → [`store`] / [`crypto`].
//! See ARCHITECTURE.md for the invariants between these layers.

pub mod cli;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod domain;
pub mod front;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod page;
pub mod provision;
pub mod rest;
pub mod service;
pub mod soap;
pub mod startup;
pub mod store;
