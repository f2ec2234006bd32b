//! Concurrent changes: each is its own transaction, none is lost, the database stays sound.

use std::sync::Barrier;
use std::time::Duration;

use serde_json::json;
use soap_passwd::crypto::verify_blocking;
use soap_passwd::domain::Password;

use crate::helpers::*;
use crate::permissions::authenticates;

/// The demo account's URL and admin, plus `n` users `u-user-00`… in one department.
fn admin_and_users(n: usize) -> String {
    let mut users = vec![json!({
        "id": ADMIN.0, "email": ADMIN.1, "password": ADMIN.2,
        "role": "account_admin", "department": "d-root",
    })];
    users.extend((0..n).map(|i| {
        json!({
            "id": user_id(i), "email": format!("user{i:02}@example.com"),
            "password": format!("Initial-Pass-{i:02}-7Qx!"), "role": "user", "department": "d-root",
        })
    }));
    json!({ "accounts": [{
        "url": ACCOUNT, "name": "Many Users",
        "departments": [{ "id": "d-root", "name": "Company", "children": [] }],
        "users": users,
    }]})
    .to_string()
}

fn user_id(i: usize) -> String {
    format!("u-user-{i:02}")
}

fn new_password(i: usize) -> String {
    format!("{STRONG}-{i:02}")
}

/// The service under test sheds load after `hash_wait`; these tests are about
/// correctness under contention, so a slow machine must not turn them into load tests.
fn patient(settings: &mut soap_passwd::config::Settings) {
    settings.hash_wait = Duration::from_secs(120);
}

/// Runs `n` changes at once (released together by a barrier) and returns the replies.
fn change_concurrently(
    app: &TestApp,
    n: usize,
    target: impl Fn(usize) -> String + Sync,
) -> Vec<Reply> {
    change_concurrently_to(app, n, target, new_password)
}

/// [`change_concurrently`], change `i` setting `password(i)`.
fn change_concurrently_to(
    app: &TestApp,
    n: usize,
    target: impl Fn(usize) -> String + Sync,
    password: impl Fn(usize) -> String + Sync,
) -> Vec<Reply> {
    let barrier = Barrier::new(n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, target, password) = (&barrier, &target, &password);
                scope.spawn(move || {
                    barrier.wait();
                    app.change(BOTH[i % 2], ADMIN, &target(i), &password(i))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    })
}

#[test]
fn sixteen_concurrent_changes_to_different_users_all_succeed() {
    const N: usize = 16;
    let app = spawn_app_with(&admin_and_users(N), patient);
    for (i, reply) in change_concurrently(&app, N, user_id).iter().enumerate() {
        assert!(reply.is_success(), "change {i}: {}", reply.body);
    }

    let db = app.db();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(
        count("SELECT count(*) FROM events WHERE kind = 'password_changed'"),
        N as i64
    );
    assert_eq!(
        count("SELECT count(DISTINCT user_id) FROM events"),
        N as i64
    );
    assert_eq!(
        count("SELECT count(*) FROM events WHERE credential_version = 2"),
        N as i64
    );
    assert_eq!(
        count("SELECT count(*) FROM audit_log WHERE outcome = 'OK'"),
        N as i64
    );
    assert_eq!(
        count("SELECT count(*) FROM audit_log WHERE outcome <> 'OK'"),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM users WHERE ext_id LIKE 'u-user-%' AND credential_version = 2"),
        N as i64
    );
    assert_eq!(
        count("SELECT credential_version FROM users WHERE ext_id = 'u-admin'"),
        1
    );
    if db.sqlite_path().is_some() {
        let integrity: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
    }

    for i in 0..N {
        assert!(
            authenticates(&app, &format!("user{i:02}@example.com"), &new_password(i)),
            "user {i} signs in with the new password"
        );
    }
}

#[test]
fn concurrent_changes_to_one_user_each_bump_the_version_once() {
    const N: usize = 8;
    let app = spawn_app_with(&admin_and_users(1), patient);
    for (i, reply) in change_concurrently(&app, N, |_| user_id(0))
        .iter()
        .enumerate()
    {
        assert!(reply.is_success(), "change {i}: {}", reply.body);
    }

    let db = app.db();
    let (version, hash): (i64, String) = db
        .query_row(
            "SELECT credential_version, password_hash FROM users WHERE ext_id = 'u-user-00'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(version, 1 + N as i64);
    let mut versions: Vec<i64> = db.column(
        "SELECT credential_version FROM events ORDER BY credential_version",
        &[],
    );
    versions.dedup();
    assert_eq!(versions, (2..=1 + N as i64).collect::<Vec<_>>());
    // The stored hash is one of the passwords sent: the last change to commit.
    let matching = (0..N)
        .filter(|i| verify_blocking(&hash, &Password::normalise(&new_password(*i))))
        .count();
    assert_eq!(matching, 1);
}

/// Each change is checked against the state it replaces: of changes racing to set one
/// user's password to the same new one, one commits and every other, checked again
/// against what that one stored, is refused as the current password — however they
/// interleave (the change commits only over the credential version it checked).
#[test]
fn racing_changes_to_the_same_password_succeed_once() {
    const N: usize = 8;
    let app = spawn_app_with(&admin_and_users(1), patient);
    let replies = change_concurrently_to(&app, N, |_| user_id(0), |_| new_password(0));
    let succeeded = replies.iter().filter(|r| r.is_success()).count();
    assert_eq!(
        succeeded,
        1,
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    for (i, reply) in replies.iter().enumerate().filter(|(_, r)| !r.is_success()) {
        assert_wrong_parameters(reply, BOTH[i % 2], "password", &["SAME_AS_CURRENT"]);
    }
    let version: i64 = app
        .db()
        .query_row(
            "SELECT credential_version FROM users WHERE ext_id = 'u-user-00'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, 2);
}
