//! Contract §8 and §9: the provisioning file, through the real binary and through
//! `provision::import_json` — idempotent, never undoing a password change, all or
//! nothing with the bad path named, and CLI failures as one line on stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use soap_passwd::config::Settings;
use soap_passwd::crypto::{HashParams, hash_blocking};
use soap_passwd::domain::Password;
use soap_passwd::provision::{self, ImportError};
use soap_passwd::startup::open_store;
use soap_passwd::store::Store;

use crate::helpers::*;
use crate::permissions::authenticates;

const DEMO_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");

/// Runs the real binary with a clean environment for the variables it reads.
fn soap_passwd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_soap-passwd"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("SOAP_PASSWD_DB")
        .output()
        .expect("run soap-passwd")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the command failed the way §9 wants: non-zero, one line on stderr, no panic.
#[track_caller]
fn assert_one_line_failure(output: &Output, fragment: &str) -> String {
    let err = stderr(output);
    assert!(
        !output.status.success(),
        "exit {:?}; stderr: {err}",
        output.status
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line on stderr: {err:?}"
    );
    assert!(err.starts_with("soap-passwd: "), "{err}");
    assert!(err.contains(fragment), "{fragment:?} not in {err:?}");
    err
}

fn import_file(file: &Path, db: &TestDb) -> Output {
    soap_passwd(&["import", file.to_str().unwrap(), "--db", &db.arg_str()])
}

fn open(db: &TestDb) -> Store {
    open_store(&Settings::new("127.0.0.1:0", db.database())).expect("open store")
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write file");
    path
}

/// Every row of every table but the append-only audit and event logs, sorted per table.
fn dump(db: &TestDb) -> BTreeMap<String, Vec<String>> {
    let tables: Vec<String> = if db.is_postgres() {
        db.column(
            "SELECT table_name FROM information_schema.tables
              WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
                AND table_name NOT IN ('audit_log', 'events') ORDER BY table_name",
            &[],
        )
    } else {
        db.column(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
                AND name NOT IN ('audit_log', 'events') ORDER BY name",
            &[],
        )
    };
    tables
        .into_iter()
        .map(|table| {
            let mut rows: Vec<String> = db
                .rows(&format!("SELECT * FROM \"{table}\""), &[])
                .iter()
                .map(|row| format!("{:?}", row.values()))
                .collect();
            rows.sort();
            (table, rows)
        })
        .collect()
}

fn count(db: &TestDb, table: &str) -> i64 {
    db.count(&format!("SELECT count(*) FROM {table}"))
}

/// The same, of an SQLite file the CLI chose.
fn sqlite_count(db: &Path, table: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn demo_doc() -> Value {
    serde_json::from_str(soap_passwd::demo::DEMO_JSON).unwrap()
}

fn demo_user<'a>(doc: &'a mut Value, id: &str) -> &'a mut Value {
    doc["accounts"][0]["users"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|u| u["id"] == id)
        .expect("demo user")
}

#[test]
fn importing_the_demo_twice_through_the_binary_changes_nothing() {
    let db = TestDb::fresh();
    let first = import_file(Path::new(DEMO_PATH), &db);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(String::from_utf8_lossy(&first.stdout).contains("13 users created"));
    let before = dump(&db);
    assert_eq!(before["users"].len(), 13);

    let second = import_file(Path::new(DEMO_PATH), &db);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(String::from_utf8_lossy(&second.stdout).contains("0 users created, 13 updated"));
    assert_eq!(dump(&db), before);
}

#[test]
fn importing_the_demo_twice_through_the_library_changes_nothing() {
    let db = TestDb::fresh();
    let store = open(&db);
    let first = provision::import_json(&store, soap_passwd::demo::DEMO_JSON, HashParams::default())
        .unwrap();
    assert_eq!((first.users_created, first.users_updated), (13, 0));
    let before = dump(&db);
    let second =
        provision::import_json(&store, soap_passwd::demo::DEMO_JSON, HashParams::default())
            .unwrap();
    assert_eq!((second.users_created, second.users_updated), (0, 13));
    assert_eq!(
        (second.accounts, second.departments, second.roles),
        (1, 6, 2)
    );
    assert_eq!(dump(&db), before);
}

#[test]
fn reimport_keeps_a_changed_password_but_updates_other_fields() {
    let app = spawn_app();
    assert!(
        app.change(Soap::V11, SALES_ADMIN, LEARNER.0, STRONG)
            .is_success()
    );

    let again = import_file(Path::new(DEMO_PATH), app.db());
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(authenticates(&app, LEARNER.1, STRONG));
    assert!(!authenticates(&app, LEARNER.1, LEARNER.2));

    // The same directory with learner2 deactivated and the learner moved to d-apac.
    let mut doc = demo_doc();
    demo_user(&mut doc, LEARNER2.0)["status"] = json!("deactivated");
    demo_user(&mut doc, LEARNER.0)["department"] = json!("d-apac");
    provision::import_json(&open(app.db()), &doc.to_string(), HashParams::default()).unwrap();

    let (status, version): (String, i64) = app
        .db()
        .query_row(
            "SELECT status, credential_version FROM users WHERE ext_id = ?1",
            [LEARNER2.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((status.as_str(), version), ("deactivated", 1));
    assert_denied(
        &app.change(Soap::V12, OWNER, LEARNER2.0, STRONG),
        Soap::V12,
        "USER_DEACTIVATED",
    );
    assert_denied(
        &app.change(Soap::V11, EMEA_ADMIN, LEARNER.0, STRONG),
        Soap::V11,
        "NOT_IN_SCOPE",
    );
    assert!(authenticates(&app, LEARNER.1, STRONG));
    let version: i64 = app
        .db()
        .query_row(
            "SELECT credential_version FROM users WHERE ext_id = ?1",
            [LEARNER.0],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, 2);
}

/// The demo with one more user, last in the list, in a department that does not exist.
fn demo_with_bad_last_user() -> (String, usize) {
    let mut doc = demo_doc();
    let users = doc["accounts"][0]["users"].as_array_mut().unwrap();
    users.push(json!({
        "id": "u-stray", "email": "stray@example.com", "password": "Stray-Demo-Pass-0001",
        "role": "user", "department": "d-x",
    }));
    let index = users.len() - 1;
    (doc.to_string(), index)
}

#[test]
fn a_file_whose_last_user_is_bad_writes_nothing_and_names_the_path() {
    let db = TestDb::fresh();
    let dir = db.dir();
    let (json, index) = demo_with_bad_last_user();
    let file = write(dir, "bad.json", &json);
    let expected = format!("accounts[0].users[{index}].department: no department \"d-x\"");

    // Into an empty database: not even the account is created. (The schema exists
    // already; `a_failed_import_into_a_new_database_prints_only_the_error` covers a
    // database the command creates.)
    drop(open(&db));
    assert_one_line_failure(&import_file(&file, &db), &expected);
    for table in [
        "accounts",
        "departments",
        "roles",
        "users",
        "user_manages",
        "user_roles",
    ] {
        assert_eq!(count(&db, table), 0, "{table}");
    }

    // Into a populated one, with other changes in the same file: nothing changes.
    let db = TestDb::fresh();
    assert!(import_file(Path::new(DEMO_PATH), &db).status.success());
    let before = dump(&db);
    let mut doc: Value = serde_json::from_str(&json).unwrap();
    doc["accounts"][0]["name"] = json!("Renamed");
    demo_user(&mut doc, LEARNER.0)["status"] = json!("deactivated");
    let file = write(dir, "bad2.json", &doc.to_string());
    assert_one_line_failure(&import_file(&file, &db), &expected);
    assert_eq!(dump(&db), before);

    // The library says the same.
    let err = provision::import_json(&open(&db), &json, HashParams::default()).unwrap_err();
    assert_eq!(err.to_string(), expected);
    assert_eq!(dump(&db), before);
}

#[test]
fn a_conflict_with_stored_users_writes_nothing_and_names_the_path() {
    let db = TestDb::fresh();
    let store = open(&db);
    provision::import_json(&store, soap_passwd::demo::DEMO_JSON, HashParams::default()).unwrap();
    let before = dump(&db);

    // A partial file (the demo's other users are not in it): a new user, then one
    // taking an e-mail a stored user already has.
    let file = |second: Value| {
        json!({ "accounts": [{ "url": ACCOUNT, "name": "Demo Company", "users": [
            { "id": "u-new", "email": "new@example.com", "password": "New-User-Pass-3141",
              "role": "user", "department": "d-emea" },
            second,
        ]}]})
        .to_string()
    };
    let taken = file(json!({ "id": "u-new2", "email": "LEARNER@example.com",
        "password": "New-User-Pass-2718", "role": "user", "department": "d-emea" }));
    let err = provision::import_json(&store, &taken, HashParams::default()).unwrap_err();
    assert!(
        err.to_string().starts_with("accounts[0].users[1].email: "),
        "{err}"
    );
    assert_eq!(dump(&db), before);

    // A second owner beside the stored one.
    let owner = file(json!({ "id": "u-owner2", "email": "owner2@example.com",
        "password": "New-Owner-Pass-1618", "role": "owner", "department": "d-root" }));
    let err = provision::import_json(&store, &owner, HashParams::default()).unwrap_err();
    assert!(
        err.to_string().starts_with("accounts[0].users[1].role: "),
        "{err}"
    );
    assert_eq!(dump(&db), before);
}

/// A small valid account that each validation case below breaks in one place.
fn paths_base() -> Value {
    json!({ "accounts": [{
        "url": "http://paths.example.com", "name": "Paths",
        "departments": [{ "id": "d-root", "name": "Root", "children": [
            { "id": "d-a", "name": "A", "children": [] }]}],
        "roles": [{ "id": "r-help", "name": "Help", "permissions": ["change_password"] }],
        "users": [
            { "id": "u-owner", "email": "owner@paths.example", "password": "Owner-Paths-Pass-1",
              "role": "owner", "department": "d-root" },
            { "id": "u-help", "email": "help@paths.example", "password": "Help-Paths-Pass-2",
              "role": "user", "department": "d-a",
              "custom_roles": [{ "role": "r-help", "departments": ["d-a"] }] },
            { "id": "u-admin", "email": "admin@paths.example", "password": "Admin-Paths-Pass-3",
              "role": "department_admin", "department": "d-a", "manages": ["d-a"] },
        ],
    }]})
}

const ARGON2I: &str =
    "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";
const HUGE_MEMORY: &str = "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";
const BCRYPT: &str = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";

#[test]
fn validation_errors_name_their_json_paths() {
    type Break = fn(&mut Value);
    let cases: Vec<(&str, Break, &str, &str)> = vec![
        (
            "duplicate user id",
            |d| d["accounts"][0]["users"][2]["id"] = json!("u-help"),
            "accounts[0].users[2].id",
            "appears twice",
        ),
        (
            "duplicate department id",
            |d| d["accounts"][0]["departments"][0]["children"][0]["id"] = json!("d-root"),
            "accounts[0].departments[0].children[0].id",
            "appears twice",
        ),
        (
            "duplicate e-mail",
            |d| d["accounts"][0]["users"][1]["email"] = json!("OWNER@paths.example"),
            "accounts[0].users[1].email",
            "already used",
        ),
        (
            "unknown built-in role",
            |d| d["accounts"][0]["users"][1]["role"] = json!("superuser"),
            "accounts[0].users[1].role",
            "unknown role \"superuser\"",
        ),
        (
            "unknown custom role",
            |d| d["accounts"][0]["users"][1]["custom_roles"][0]["role"] = json!("r-x"),
            "accounts[0].users[1].custom_roles[0].role",
            "no role \"r-x\"",
        ),
        (
            "unknown permission",
            |d| d["accounts"][0]["roles"][0]["permissions"][0] = json!("delete_users"),
            "accounts[0].roles[0].permissions[0]",
            "unknown permission",
        ),
        (
            "unknown managed department",
            |d| d["accounts"][0]["users"][2]["manages"][0] = json!("d-x"),
            "accounts[0].users[2].manages[0]",
            "no department \"d-x\"",
        ),
        (
            "unknown custom-role department",
            |d| d["accounts"][0]["users"][1]["custom_roles"][0]["departments"][0] = json!("d-x"),
            "accounts[0].users[1].custom_roles[0].departments[0]",
            "no department \"d-x\"",
        ),
        (
            "two owners",
            |d| d["accounts"][0]["users"][1]["role"] = json!("owner"),
            "accounts[0].users[1].role",
            "one owner",
        ),
        (
            "unknown status",
            |d| d["accounts"][0]["users"][0]["status"] = json!("gone"),
            "accounts[0].users[0].status",
            "unknown status",
        ),
        (
            "password and password_hash",
            |d| d["accounts"][0]["users"][1]["password_hash"] = json!(HUGE_MEMORY),
            "accounts[0].users[1]",
            "not both",
        ),
        (
            "neither password nor password_hash",
            |d| {
                d["accounts"][0]["users"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("password");
            },
            "accounts[0].users[1]",
            "needs password",
        ),
        (
            "out-of-bounds password_hash",
            |d| {
                let u = d["accounts"][0]["users"][2].as_object_mut().unwrap();
                u.remove("password");
                u.insert("password_hash".into(), json!(HUGE_MEMORY));
            },
            "accounts[0].users[2].password_hash",
            "outside",
        ),
        (
            "argon2i password_hash",
            |d| {
                let u = d["accounts"][0]["users"][2].as_object_mut().unwrap();
                u.remove("password");
                u.insert("password_hash".into(), json!(ARGON2I));
            },
            "accounts[0].users[2].password_hash",
            "argon2id",
        ),
        (
            "bcrypt password_hash",
            |d| {
                let u = d["accounts"][0]["users"][2].as_object_mut().unwrap();
                u.remove("password");
                u.insert("password_hash".into(), json!(BCRYPT));
            },
            "accounts[0].users[2].password_hash",
            "",
        ),
        (
            "typo in a key",
            |d| {
                let u = d["accounts"][0]["users"][0].as_object_mut().unwrap();
                let password = u.remove("password").unwrap();
                u.insert("pasword".into(), password);
            },
            "accounts[0].users[0]",
            "unknown field `pasword`",
        ),
        (
            "max_length below min_length",
            |d| d["accounts"][0]["policy"] = json!({ "min_length": 12, "max_length": 8 }),
            "accounts[0].policy.max_length",
            "min_length",
        ),
    ];

    let base_db = TestDb::fresh();
    provision::import_json(
        &open(&base_db),
        &paths_base().to_string(),
        HashParams::default(),
    )
    .expect("the base file is valid");

    let db = TestDb::fresh();
    let store = open(&db);
    for (what, break_it, path, fragment) in cases {
        let mut doc = paths_base();
        break_it(&mut doc);
        match provision::import_json(&store, &doc.to_string(), HashParams::default()) {
            Err(ImportError::Invalid { path: got, message }) => {
                assert!(
                    got.starts_with(path),
                    "{what}: path {got:?}, expected {path:?} ({message})"
                );
                assert!(
                    message.contains(fragment),
                    "{what}: {message:?} lacks {fragment:?}"
                );
            }
            other => panic!("{what}: expected a path error, got {other:?}"),
        }
        assert_eq!(count(&db, "accounts"), 0, "{what} wrote something");
    }
}

#[test]
fn a_given_password_hash_is_stored_as_given_and_authenticates() {
    let password = "Given-Hash-Pass-8080";
    let hash = hash_blocking(HashParams::default(), &Password::normalise(password)).unwrap();
    let mut doc = demo_doc();
    let learner = demo_user(&mut doc, LEARNER.0).as_object_mut().unwrap();
    learner.remove("password");
    learner.insert("password_hash".into(), json!(hash));

    let app = spawn_app_with(&doc.to_string(), |_| {});
    let stored: String = app
        .db()
        .query_row(
            "SELECT password_hash FROM users WHERE ext_id = ?1",
            [LEARNER.0],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, hash);
    assert!(authenticates(&app, LEARNER.1, password));
    // It also counts as a password the user had.
    assert!(app.change(Soap::V11, OWNER, LEARNER.0, STRONG).is_success());
    assert_wrong_parameters(
        &app.change(Soap::V11, OWNER, LEARNER.0, password),
        Soap::V11,
        "password",
        &["REUSED"],
    );
}

#[test]
fn cli_errors_are_one_line_on_stderr_and_never_a_panic() {
    // Paths that are not databases are SQLite's to refuse: this runs on an SQLite file
    // whichever backend the suite runs on (the PostgreSQL case is at the end).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    drop(open_store(&Settings::new("127.0.0.1:0", db.as_path())).expect("open store"));
    let db = db.to_str().unwrap();
    let not_json = write(dir.path(), "not.json", "{ \"accounts\": [ nope");
    let not_json = not_json.to_str().unwrap();
    let a_directory = dir.path().to_str().unwrap();
    let missing_dir_db = dir.path().join("no/such/dir/x.db");
    let missing_dir_db = missing_dir_db.to_str().unwrap();

    assert_one_line_failure(&soap_passwd(&["import", DEMO_PATH, "--bogus"]), "--bogus");
    assert_one_line_failure(&soap_passwd(&["frobnicate"]), "frobnicate");
    assert_one_line_failure(&soap_passwd(&["serve", "--workers", "0"]), "--workers");
    assert_one_line_failure(
        &soap_passwd(&["import", "/no/such/file.json", "--db", db]),
        "cannot read /no/such/file.json",
    );
    assert_one_line_failure(
        &soap_passwd(&["import", not_json, "--db", db]),
        "not.json: accounts[0]: expected ident",
    );
    assert_one_line_failure(
        &soap_passwd(&["import", a_directory, "--db", db]),
        a_directory,
    );
    assert_one_line_failure(
        &soap_passwd(&["import", DEMO_PATH, "--db", a_directory]),
        &format!("cannot open database {a_directory}"),
    );
    assert_one_line_failure(
        &soap_passwd(&["import", DEMO_PATH, "--db", missing_dir_db]),
        missing_dir_db,
    );
    assert_one_line_failure(
        &soap_passwd(&["serve", "--db", a_directory, "--bind", "127.0.0.1:0"]),
        &format!("cannot open database {a_directory}"),
    );
    assert_one_line_failure(
        &soap_passwd(&["serve", "--db", db, "--bind", "not an address"]),
        "cannot listen on not an address",
    );
    assert_one_line_failure(
        &soap_passwd(&["serve", "--db", db, "--lockout-max", "99999999999"]),
        "--lockout-max",
    );
    // A file that is not an SQLite database is refused and left as it was.
    assert_one_line_failure(
        &soap_passwd(&["import", DEMO_PATH, "--db", not_json]),
        "not.json",
    );
    assert_eq!(
        std::fs::read_to_string(not_json).unwrap(),
        "{ \"accounts\": [ nope"
    );
    // A port another process holds.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    assert_one_line_failure(
        &soap_passwd(&["serve", "--db", db, "--bind", &taken]),
        &format!("cannot listen on {taken}"),
    );
    // None of these touched the database.
    assert_eq!(sqlite_count(Path::new(db), "accounts"), 0);

    // A PostgreSQL server that does not answer: one line, naming it without its password.
    let unreachable = "postgres://soap:hunter2-secret@127.0.0.1:1/soap";
    for command in [
        &["import", DEMO_PATH, "--db", unreachable][..],
        &["serve", "--bind", "127.0.0.1:0", "--db", unreachable],
        &["audit", "--db", unreachable],
    ] {
        let err = assert_one_line_failure(&soap_passwd(command), "127.0.0.1:1");
        assert!(!err.contains("hunter2"), "{err}");
    }
}

/// Contract §9: `--db` defaults to `SOAP_PASSWD_DB`, else `./soap-passwd.db`.
#[test]
fn the_database_is_soap_passwd_db_else_the_working_directorys_soap_passwd_db() {
    let dir = tempfile::tempdir().unwrap();
    let from_env = dir.path().join("from-env.db");
    let import_in_dir = |env: Option<&Path>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_soap-passwd"));
        command
            .args(["import", DEMO_PATH])
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env_remove("SOAP_PASSWD_DB");
        if let Some(path) = env {
            command.env("SOAP_PASSWD_DB", path);
        }
        let out = command.output().expect("run soap-passwd");
        assert!(out.status.success(), "{}", stderr(&out));
    };
    import_in_dir(Some(&from_env));
    assert_eq!(sqlite_count(&from_env, "accounts"), 1);
    let default = dir.path().join("soap-passwd.db");
    assert!(!default.exists(), "SOAP_PASSWD_DB was not used");
    import_in_dir(None);
    assert_eq!(sqlite_count(&default, "accounts"), 1);
}

#[test]
fn cli_names_a_missing_argument() {
    assert_one_line_failure(&soap_passwd(&["import"]), "<FILE>");
}

#[test]
fn a_failed_import_into_a_new_database_prints_only_the_error() {
    let db = TestDb::fresh();
    let (json, index) = demo_with_bad_last_user();
    let file = write(db.dir(), "bad.json", &json);
    let err = assert_one_line_failure(
        &import_file(&file, &db),
        &format!("accounts[0].users[{index}].department"),
    );
    assert!(err.contains("bad.json"), "{err}");
}

#[test]
fn a_file_may_move_an_email_or_the_owner_role_between_stored_users() {
    let db = TestDb::fresh();
    let store = open(&db);
    provision::import_json(&store, soap_passwd::demo::DEMO_JSON, HashParams::default()).unwrap();

    // The admin becomes owner and the SSO user takes the learner's e-mail; reversed, the
    // file lists both takers before the users who give these up.
    let mut doc = demo_doc();
    doc["accounts"][0]["users"]
        .as_array_mut()
        .unwrap()
        .reverse();
    demo_user(&mut doc, ADMIN.0)["role"] = json!("owner");
    demo_user(&mut doc, OWNER.0)["role"] = json!("account_admin");
    demo_user(&mut doc, SSO.0)["email"] = json!(LEARNER.1);
    demo_user(&mut doc, LEARNER.0)["email"] = json!("learner.moved@example.com");
    provision::import_json(&store, &doc.to_string(), HashParams::default()).unwrap();

    let one = |sql: &str| -> String { db.one(sql, &[]) };
    assert_eq!(
        one("SELECT ext_id FROM users WHERE role = 'owner'"),
        ADMIN.0
    );
    assert_eq!(
        one("SELECT ext_id FROM users WHERE email_key = 'learner@example.com'"),
        SSO.0
    );
    assert_eq!(
        one("SELECT email FROM users WHERE ext_id = 'u-learner'"),
        "learner.moved@example.com"
    );
    assert_eq!(
        one("SELECT role FROM users WHERE ext_id = 'u-owner'"),
        "account_admin"
    );
    assert_eq!(
        one("SELECT count(*) || '' FROM users WHERE email_key NOT LIKE '%@%'"),
        "0"
    );
}

/// Who manages what and holds which custom role over what, by external ids.
fn scopes_and_grants(db: &TestDb) -> (Vec<String>, Vec<String>) {
    (
        db.column(
            "SELECT u.ext_id || ' manages ' || d.ext_id FROM user_manages m
               JOIN users u ON u.id = m.user_id JOIN departments d ON d.id = m.department_id
              ORDER BY 1",
            &[],
        ),
        db.column(
            "SELECT u.ext_id || ' is ' || r.ext_id || ' over ' || d.ext_id FROM user_roles g
               JOIN users u ON u.id = g.user_id JOIN roles r ON r.id = g.role_id
               JOIN departments d ON d.id = g.department_id
              ORDER BY 1",
            &[],
        ),
    )
}

#[test]
fn a_reimport_replaces_the_scopes_and_custom_roles_of_stored_users_and_gives_new_ones_theirs() {
    // The scopes and custom roles of stored and new users are written by their external
    // ids after the users themselves; a stored user's old ones go first.
    let db = TestDb::fresh();
    assert!(import_file(Path::new(DEMO_PATH), &db).status.success());
    let (manages, grants) = scopes_and_grants(&db);
    assert!(
        manages.contains(&"u-sales-admin manages d-sales".to_string()),
        "{manages:?}"
    );
    assert!(
        grants.contains(&"u-help is r-helpdesk over d-emea".to_string()),
        "{grants:?}"
    );

    let mut doc = demo_doc();
    demo_user(&mut doc, "u-sales-admin")["manages"] = json!(["d-emea", "d-eng"]);
    demo_user(&mut doc, "u-eng-admin")["manages"] = json!(["d-platform"]);
    demo_user(&mut doc, "u-help")["custom_roles"] =
        json!([{ "role": "r-trainer", "departments": ["d-apac", "d-platform"] }]);
    doc["accounts"][0]["users"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "id": "u-new-admin", "email": "new-admin@example.com",
            "password": "New-Admin-Pass-2718", "role": "department_admin",
            "department": "d-root", "manages": ["d-apac"],
            "custom_roles": [{ "role": "r-helpdesk", "departments": ["d-root"] }]
        }));
    let summary =
        provision::import_json(&open(&db), &doc.to_string(), HashParams::default()).unwrap();
    assert_eq!(summary.users_created, 1);

    let (manages, grants) = scopes_and_grants(&db);
    let expected_manages = [
        "u-emea-admin manages d-emea",
        "u-eng-admin manages d-platform",
        "u-new-admin manages d-apac",
        "u-sales-admin manages d-emea",
        "u-sales-admin manages d-eng",
    ];
    assert_eq!(manages, expected_manages);
    let expected_grants = [
        "u-help is r-trainer over d-apac",
        "u-help is r-trainer over d-platform",
        "u-new-admin is r-helpdesk over d-root",
        "u-trainer is r-trainer over d-sales",
    ];
    assert_eq!(grants, expected_grants);

    // Once more, unchanged: the same rows, none twice.
    provision::import_json(&open(&db), &doc.to_string(), HashParams::default()).unwrap();
    assert_eq!(scopes_and_grants(&db), (manages, grants));
}
