//! The process's metrics (contract §16), served by `GET /metrics` in the Prometheus
//! text format (OpenMetrics 1.0, from `prometheus-client`).
//!
//! Owns every metric's name, help and labels, and the rule that no label holds anything
//! of a user: labels are front doors, operation names, outcome codes and fixed kinds,
//! all `&'static str` from the code, so the number of series is bounded whatever the
//! calls say. Counters and histograms are moved where things happen (the access line,
//! the sign-in's lockout, the store's retries, the mail sender); the gauges of the
//! argon2 pool and the outstanding reset links are read when scraped.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::domain::FrontDoor;

/// The media type of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    front_door: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DoorLabels {
    front_door: &'static str,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: &'static str,
}

type Histograms = Family<DoorLabels, Histogram, fn() -> Histogram>;

struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    durations: Histograms,
    shed: Counter,
    lockouts: Family<Kind, Counter>,
    db_errors: Family<Kind, Counter>,
    db_retries: Family<Kind, Counter>,
    mails_sent: Counter,
    mails_failed: Family<Kind, Counter>,
    hash_slots: Gauge,
    hash_in_use: Gauge,
    hash_waiting: Gauge,
    resets_outstanding: Gauge,
}

/// From 1 ms, doubling, to 16 s: a call takes from a fraction of one argon2 operation
/// (a refusal) to a batch of many.
fn call_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("soap_passwd");
    let calls = Family::<CallLabels, Counter>::default();
    registry.register(
        "calls",
        "Calls answered, by front door (soap, rest, page), operation and outcome",
        calls.clone(),
    );
    let durations: Histograms = Family::new_with_constructor(call_histogram);
    registry.register(
        "call_duration_seconds",
        "Time from a call's head to its answer, by front door and operation",
        durations.clone(),
    );
    let shed = Counter::default();
    registry.register(
        "shed_calls",
        "Calls refused as ServerBusy (the argon2 pool's queue full or too slow to reach them)",
        shed.clone(),
    );
    let lockouts = Family::<Kind, Counter>::default();
    registry.register(
        "lockouts",
        "Locks started by failed sign-ins: kind pair (one account URL and e-mail) or address",
        lockouts.clone(),
    );
    let db_errors = Family::<Kind, Counter>::default();
    registry.register(
        "database_errors",
        "Calls failed by the database: kind unavailable (not reached) or error",
        db_errors.clone(),
    );
    let db_retries = Family::<Kind, Counter>::default();
    registry.register(
        "database_retries",
        "Database work retried: kind serialization (a PostgreSQL transaction that did not \
         serialize) or audit_write (an audit batch the database refused for a while)",
        db_retries.clone(),
    );
    let mails_sent = Counter::default();
    registry.register(
        "mails_sent",
        "Mails the SMTP server accepted",
        mails_sent.clone(),
    );
    let mails_failed = Family::<Kind, Counter>::default();
    registry.register(
        "mails_failed",
        "Mails not sent, left for a retry: kind refused (a 5xx answer) or unreachable",
        mails_failed.clone(),
    );
    let hash_slots = Gauge::default();
    registry.register(
        "hash_slots",
        "Requests the argon2 pool admits at once",
        hash_slots.clone(),
    );
    let hash_in_use = Gauge::default();
    registry.register(
        "hash_slots_in_use",
        "Admitted requests holding an argon2 slot",
        hash_in_use.clone(),
    );
    let hash_waiting = Gauge::default();
    registry.register(
        "hash_waiting",
        "Requests waiting for an argon2 slot",
        hash_waiting.clone(),
    );
    let resets_outstanding = Gauge::default();
    registry.register(
        "reset_links_outstanding",
        "Reset links issued, not yet used, not expired (read from the database when scraped)",
        resets_outstanding.clone(),
    );
    let info = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
    info.get_or_create(&vec![("version", env!("CARGO_PKG_VERSION"))])
        .set(1);
    registry.register("build_info", "The running build (always 1)", info);
    Metrics {
        registry,
        calls,
        durations,
        shed,
        lockouts,
        db_errors,
        db_retries,
        mails_sent,
        mails_failed,
        hash_slots,
        hash_in_use,
        hash_waiting,
        resets_outstanding,
    }
});

fn door(front: FrontDoor) -> &'static str {
    match front {
        FrontDoor::Soap => "soap",
        FrontDoor::Rest => "rest",
        FrontDoor::Page => "page",
    }
}

/// One answered call, as its access line records it.
pub fn call(front: FrontDoor, operation: &'static str, outcome: &'static str, took: Duration) {
    let m = &*METRICS;
    let front_door = door(front);
    m.calls
        .get_or_create(&CallLabels {
            front_door,
            operation,
            outcome,
        })
        .inc();
    m.durations
        .get_or_create(&DoorLabels {
            front_door,
            operation,
        })
        .observe(took.as_secs_f64());
    if outcome == "SERVER_BUSY" {
        m.shed.inc();
    }
}

/// A lock started: `"pair"` or `"address"`.
pub fn lockout(kind: &'static str) {
    METRICS.lockouts.get_or_create(&Kind { kind }).inc();
}

/// A call failed by the database: `"unavailable"` or `"error"`.
pub fn database_error(kind: &'static str) {
    METRICS.db_errors.get_or_create(&Kind { kind }).inc();
}

/// Database work retried: `"serialization"` or `"audit_write"`.
pub fn database_retry(kind: &'static str) {
    METRICS.db_retries.get_or_create(&Kind { kind }).inc();
}

pub fn mail_sent() {
    METRICS.mails_sent.inc();
}

/// A mail not sent: `"refused"` or `"unreachable"`.
pub fn mail_failed(kind: &'static str) {
    METRICS.mails_failed.get_or_create(&Kind { kind }).inc();
}

/// What is read when scraped.
pub struct Scraped {
    /// (slots, in use, waiting) of the argon2 pool.
    pub hashing: (usize, usize, usize),
    /// Live reset links; `None` when the database did not answer.
    pub resets_outstanding: Option<i64>,
}

/// The text of every metric, with the scraped gauges set first.
pub fn encode(scraped: Scraped) -> String {
    let m = &*METRICS;
    let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let (slots, in_use, waiting) = scraped.hashing;
    m.hash_slots.set(gauge(slots));
    m.hash_in_use.set(gauge(in_use));
    m.hash_waiting.set(gauge(waiting));
    if let Some(n) = scraped.resets_outstanding {
        m.resets_outstanding.set(n);
    }
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &m.registry);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_moves_its_counter_and_histogram_and_a_busy_one_the_shed_counter() {
        call(
            FrontDoor::Rest,
            "UnitTestOperation",
            "SERVER_BUSY",
            Duration::from_millis(3),
        );
        let text = encode(Scraped {
            hashing: (3, 1, 2),
            resets_outstanding: Some(4),
        });
        assert!(text.contains(
            r#"soap_passwd_calls_total{front_door="rest",operation="UnitTestOperation",outcome="SERVER_BUSY"} 1"#
        ), "{text}");
        assert!(text.contains(
            r#"soap_passwd_call_duration_seconds_bucket{le="0.004",front_door="rest",operation="UnitTestOperation"} 1"#
        ), "{text}");
        assert!(text.contains("soap_passwd_hash_waiting 2"), "{text}");
        assert!(
            text.contains("soap_passwd_reset_links_outstanding 4"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
