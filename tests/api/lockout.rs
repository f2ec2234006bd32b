//! Brute-force defence (contract §10): pair lockouts, address throttling, persistence.

use std::time::Duration;

use soap_passwd::service::Defences;
use soap_passwd::store::ThrottlePolicy;

use crate::helpers::*;

/// Demo directory with short locks so tests can wait them out.
fn app_with(policy: ThrottlePolicy, allowlist: &[&str]) -> TestApp {
    let allowlist = allowlist
        .iter()
        .map(|s| ipnet::IpNet::from(s.parse::<std::net::IpAddr>().expect("an address")))
        .collect();
    spawn_app_with(soap_passwd::demo::DEMO_JSON, move |s| {
        s.defences = Defences { policy, allowlist };
    })
}

fn short_locks() -> ThrottlePolicy {
    ThrottlePolicy {
        lock_ms: 1500,
        ..ThrottlePolicy::default()
    }
}

fn wrong<'a>(caller: (&'a str, &'a str, &str)) -> (&'a str, &'a str, &'static str) {
    (caller.0, caller.1, "Wrong-Pass-0000-x")
}

fn audit_details(app: &TestApp, detail: &str) -> i64 {
    app.audit_rows_where(&format!("detail LIKE '{detail}%'"), 1)
}

#[test]
fn the_eleventh_attempt_with_the_right_password_is_refused_during_lockout_and_works_after() {
    let app = app_with(short_locks(), &[]);
    for _ in 0..10 {
        let reply = app.change(Soap::V11, wrong(OWNER), LEARNER.0, STRONG);
        assert_client_fault(
            &reply,
            Soap::V11,
            "Authorization failed",
            "AuthenticationFailedFault",
        );
    }
    let locked = app.change(Soap::V11, OWNER, LEARNER.0, STRONG);
    let plain_failure = app.change(Soap::V11, wrong(ADMIN), LEARNER.0, STRONG);
    assert_client_fault(
        &locked,
        Soap::V11,
        "Authorization failed",
        "AuthenticationFailedFault",
    );
    assert_eq!(
        locked.body, plain_failure.body,
        "a lockout looks like any failed sign-in"
    );
    assert!(audit_details(&app, "LOCKED_OUT") >= 1);
    assert!(
        audit_details(&app, "PAIR_LOCKED") >= 1,
        "the lockout is audited"
    );
    std::thread::sleep(Duration::from_millis(1600));
    assert!(app.change(Soap::V11, OWNER, LEARNER.0, STRONG).is_success());
}

/// Pins the pace of locked-out answers (src/service/mod.rs, `FailurePace`): a call
/// refused by a lockout is answered after about as long as a real failed sign-in takes,
/// so its timing does not tell a client it is locked out, and hammering a lock gets
/// answers no faster than real attempts. Compared as the median ratio of back-to-back
/// pairs (locked pair, then a wrong password for an unlocked pair), which load from
/// elsewhere skews far less than two separate medians. Fails without the pace: a locked
/// answer skips argon2 and comes back an order of magnitude sooner (ratio ~0.05).
#[test]
fn a_locked_out_answer_takes_as_long_as_a_failed_sign_in() {
    let app = app_with(
        ThrottlePolicy {
            address_threshold: 100_000,
            ..ThrottlePolicy::default()
        },
        &[],
    );
    let timed = |caller: (&str, &str, &str)| {
        app.time_failed_sign_in(&request(ACCOUNT, caller.1, caller.2, LEARNER.0, STRONG))
            .as_secs_f64()
    };
    for _ in 0..10 {
        timed(wrong(OWNER));
    }
    // A fresh e-mail each time, so the failures compared with are never locked.
    let ghosts: Vec<String> = (0..15).map(|i| format!("ghost{i}@example.com")).collect();
    let mut ratios: Vec<f64> = ghosts
        .iter()
        .map(|ghost| timed(OWNER) / timed(("-", ghost, "Wrong-Pass-0000-x")))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    assert!(
        (0.5..=2.0).contains(&median),
        "a locked-out answer takes {median:.2} times as long as a failed sign-in ({ratios:?})"
    );
    assert_eq!(
        app.audit_calls_where("detail = 'LOCKED_OUT'", 15),
        15,
        "every one of them was refused by the lock"
    );
}

#[test]
fn an_unknown_email_locks_exactly_like_a_known_one() {
    let app = app_with(short_locks(), &[]);
    let ghost = ("-", "nobody@example.com", "Wrong-Pass-0000-x");
    for _ in 0..10 {
        app.change(Soap::V12, ghost, LEARNER.0, STRONG);
        app.change(Soap::V12, wrong(OWNER), LEARNER.0, STRONG);
    }
    let ghost_locked = app.change(Soap::V12, ghost, LEARNER.0, STRONG);
    let owner_locked = app.change(Soap::V12, OWNER, LEARNER.0, STRONG);
    assert_client_fault(
        &ghost_locked,
        Soap::V12,
        "Authorization failed",
        "AuthenticationFailedFault",
    );
    assert_eq!(ghost_locked.body, owner_locked.body);
    assert_eq!(app.audit_calls_where("detail = 'LOCKED_OUT'", 2), 2);
    assert_eq!(app.audit_rows_where("outcome = 'LOCKOUT'", 2), 2);
}

#[test]
fn a_success_resets_the_pairs_count() {
    let app = app_with(ThrottlePolicy::default(), &[]);
    for _ in 0..9 {
        app.change(Soap::V11, wrong(OWNER), LEARNER.0, STRONG);
    }
    assert!(app.change(Soap::V11, OWNER, LEARNER.0, STRONG).is_success());
    for _ in 0..9 {
        app.change(Soap::V11, wrong(OWNER), LEARNER.0, STRONG);
    }
    let reply = app.change(Soap::V11, OWNER, LEARNER.0, &format!("{STRONG}-2"));
    assert!(reply.is_success(), "{}", reply.body);
}

#[test]
fn lockouts_survive_a_restart() {
    let mut app = app_with(ThrottlePolicy::default(), &[]);
    for _ in 0..10 {
        app.change(Soap::V11, wrong(OWNER), LEARNER.0, STRONG);
    }
    app.restart();
    let reply = app.change(Soap::V11, OWNER, LEARNER.0, STRONG);
    assert_client_fault(
        &reply,
        Soap::V11,
        "Authorization failed",
        "AuthenticationFailedFault",
    );
    assert!(audit_details(&app, "LOCKED_OUT") >= 1);
}

#[test]
fn an_address_with_too_many_failures_is_throttled_for_every_email() {
    let policy = ThrottlePolicy {
        address_threshold: 5,
        ..short_locks()
    };
    let app = app_with(policy, &[]);
    for who in [OWNER, ADMIN, ADMIN2, SALES_ADMIN, HELP] {
        app.change(Soap::V11, wrong(who), LEARNER.0, STRONG);
    }
    let reply = app.change(Soap::V11, EMEA_ADMIN, LEARNER.0, STRONG);
    assert_client_fault(
        &reply,
        Soap::V11,
        "Authorization failed",
        "AuthenticationFailedFault",
    );
    assert!(audit_details(&app, "ADDRESS_THROTTLED") >= 1);
    std::thread::sleep(Duration::from_millis(1600));
    assert!(
        app.change(Soap::V11, EMEA_ADMIN, LEARNER.0, STRONG)
            .is_success()
    );
}

#[test]
fn an_allowlisted_address_is_exempt_from_the_address_throttle_but_not_the_pair_lockout() {
    let policy = ThrottlePolicy {
        address_threshold: 5,
        ..short_locks()
    };
    let app = app_with(policy, &["127.0.0.1"]);
    for who in [OWNER, ADMIN, ADMIN2, SALES_ADMIN, HELP, ENG_ADMIN] {
        app.change(Soap::V11, wrong(who), LEARNER.0, STRONG);
    }
    assert!(
        app.change(Soap::V11, EMEA_ADMIN, LEARNER.0, STRONG)
            .is_success()
    );
    for _ in 0..10 {
        app.change(Soap::V11, wrong(OWNER), LEARNER.0, STRONG);
    }
    let reply = app.change(Soap::V11, OWNER, LEARNER.0, &format!("{STRONG}-2"));
    assert_client_fault(
        &reply,
        Soap::V11,
        "Authorization failed",
        "AuthenticationFailedFault",
    );
}

#[test]
fn each_repeated_lockout_doubles() {
    let policy = ThrottlePolicy {
        pair_threshold: 2,
        lock_ms: 400,
        ..ThrottlePolicy::default()
    };
    let app = app_with(policy, &[]);
    let lock_length = |app: &TestApp| -> i64 {
        app.db()
            .query_row(
                "SELECT locked_until - updated_at FROM auth_throttle WHERE key LIKE 'pair:%'",
                [],
                |r| r.get(0),
            )
            .expect("pair row")
    };
    for _ in 0..2 {
        app.change(Soap::V11, wrong(OWNER), LEARNER.0, STRONG);
    }
    assert_eq!(lock_length(&app), 400);
    std::thread::sleep(Duration::from_millis(450));
    for _ in 0..2 {
        app.change(Soap::V11, wrong(OWNER), LEARNER.0, STRONG);
    }
    assert_eq!(lock_length(&app), 800);
}
