//! Stored hashes: argon2id PHC at the configured parameters; weaker ones upgraded.

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::helpers::*;

fn weak_hash(password: &str) -> String {
    let params = Params::new(7168, 1, 1, None).expect("params");
    let salt = SaltString::encode_b64(b"sixteen-byte-slt").expect("salt");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .expect("hash")
        .to_string()
}

/// A one-department account holding a user `u-admin` (account admin, e-mail
/// admin@example.com) whose stored hash is `admin_hash`, plus `more_users` (JSON objects,
/// comma-separated, each starting with a comma).
fn account_with_admin_hash(admin_hash: &str, more_users: &str) -> String {
    format!(
        r#"{{"accounts":[{{"url":"{ACCOUNT}","name":"A",
            "departments":[{{"id":"d","name":"D"}}],
            "users":[
              {{"id":"u-admin","email":"admin@example.com","password_hash":"{admin_hash}",
                "role":"account_admin","department":"d"}}{more_users}]}}]}}"#
    )
}

fn stored_hash(app: &TestApp, user: &str) -> String {
    app.db()
        .query_row(
            "SELECT password_hash FROM users WHERE ext_id = ?1",
            [user],
            |r| r.get(0),
        )
        .expect("user")
}

#[test]
fn a_weaker_stored_hash_is_upgraded_after_a_successful_sign_in() {
    let weak = weak_hash("Weak-Params-Pass-9931");
    let json = account_with_admin_hash(
        &weak,
        r#",{"id":"u-1","email":"one@example.com","password":"One-Pass-1234-x",
             "role":"user","department":"d"}"#,
    );
    let app = spawn_app_with(&json, |_| {});
    assert_eq!(stored_hash(&app, "u-admin"), weak, "imported as given");

    let caller = ("u-admin", "admin@example.com", "Weak-Params-Pass-9931");
    let reply = app.change(Soap::V11, caller, "u-1", STRONG);
    assert!(reply.is_success(), "{}", reply.body);
    let upgraded = stored_hash(&app, "u-admin");
    assert!(
        upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{upgraded}"
    );
    // Same password, new parameters: the caller still signs in, and no change was recorded.
    let reply = app.change(Soap::V12, caller, "u-1", &format!("{STRONG}-2"));
    assert!(reply.is_success(), "{}", reply.body);
    let version: i64 = app
        .db()
        .query_row(
            "SELECT credential_version FROM users WHERE ext_id = 'u-admin'",
            [],
            |r| r.get(0),
        )
        .expect("version");
    assert_eq!(version, 1);
}

#[test]
fn a_failed_sign_in_does_not_touch_a_weaker_hash() {
    let weak = weak_hash("Weak-Params-Pass-9931");
    let json = account_with_admin_hash(&weak, "");
    let app = spawn_app_with(&json, |_| {});
    let reply = app.change(
        Soap::V11,
        ("u-admin", "admin@example.com", "wrong-password-1"),
        "u-admin",
        STRONG,
    );
    assert_client_fault(
        &reply,
        Soap::V11,
        "Authorization failed",
        "AuthenticationFailedFault",
    );
    assert_eq!(stored_hash(&app, "u-admin"), weak);
}

#[test]
fn new_hashes_are_argon2id_at_owasp_parameters_with_unique_salts() {
    let app = spawn_app();
    assert!(app.change(Soap::V11, OWNER, LEARNER.0, STRONG).is_success());
    assert!(
        app.change(Soap::V11, OWNER, LEARNER2.0, STRONG)
            .is_success()
    );
    let (a, b) = (stored_hash(&app, LEARNER.0), stored_hash(&app, LEARNER2.0));
    for h in [&a, &b] {
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
    }
    assert_ne!(a, b, "same password, different salts");
}

/// An imported hash weaker than the configured parameters checks several times faster
/// than a hash at ours (m = 7168, t = 1 costs a fifth), so until the user's next
/// successful sign-in upgrades it, a wrong password for that user came back faster than
/// one for anybody else, telling that the e-mail exists. The failure now waits out the
/// difference. Fails without that wait (ratio about 0.3).
#[test]
fn a_wrong_password_against_a_weaker_imported_hash_takes_as_long_as_any_other() {
    let weak = weak_hash("Weak-Params-Pass-9931");
    let json = account_with_admin_hash(
        &weak,
        r#",{"id":"u-strong","email":"strong@example.com","password":"Strong-Params-Pass-9931",
             "role":"account_admin","department":"d"}"#,
    );
    let app = spawn_app_with(&json, |s| {
        s.defences.policy.pair_threshold = 100_000;
        s.defences.policy.address_threshold = 100_000;
    });
    let wrong = |email: &str| request(ACCOUNT, email, "Not-The-Pass-0000", "u-strong", STRONG);
    crate::resilience::assert_same_time(
        &app,
        &wrong("strong@example.com"),
        &wrong("admin@example.com"),
        "a wrong password against a weaker imported hash",
    );
    assert_eq!(stored_hash(&app, "u-admin"), weak);
}
