//! The embedded migration list. Append only: a shipped migration is never edited.

use rusqlite_migration::{M, Migrations};

const V1: &str = r#"
CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY,
    url           TEXT    NOT NULL,
    url_key       TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    min_length    INTEGER NOT NULL DEFAULT 10,
    max_length    INTEGER NOT NULL DEFAULT 128,
    forbid_email  INTEGER NOT NULL DEFAULT 1,
    forbid_common INTEGER NOT NULL DEFAULT 1,
    history       INTEGER NOT NULL DEFAULT 0,
    self_service  INTEGER NOT NULL DEFAULT 1
) STRICT;

CREATE TABLE departments (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    ext_id     TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    parent_id  INTEGER REFERENCES departments(id),
    UNIQUE (account_id, ext_id)
) STRICT;
CREATE INDEX departments_parent ON departments(parent_id);

CREATE TABLE roles (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    ext_id     TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    UNIQUE (account_id, ext_id)
) STRICT;

CREATE TABLE role_permissions (
    role_id    INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    permission TEXT    NOT NULL,
    PRIMARY KEY (role_id, permission)
) STRICT, WITHOUT ROWID;

CREATE TABLE users (
    id                  INTEGER PRIMARY KEY,
    account_id          INTEGER NOT NULL REFERENCES accounts(id),
    ext_id              TEXT    NOT NULL,
    email               TEXT    NOT NULL,
    email_key           TEXT    NOT NULL,
    role                TEXT    NOT NULL
        CHECK (role IN ('owner', 'account_admin', 'department_admin', 'user')),
    department_id       INTEGER NOT NULL REFERENCES departments(id),
    status              TEXT    NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'deactivated')),
    externally_managed  INTEGER NOT NULL DEFAULT 0,
    password_hash       TEXT    NOT NULL,
    password_changed_at TEXT    NOT NULL,
    credential_version  INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account_id, ext_id),
    UNIQUE (account_id, email_key)
) STRICT;
CREATE UNIQUE INDEX users_one_owner ON users(account_id) WHERE role = 'owner';
CREATE INDEX users_department ON users(department_id);

-- Departments a department admin administers (each with its subtree).
CREATE TABLE user_manages (
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    department_id INTEGER NOT NULL REFERENCES departments(id),
    PRIMARY KEY (user_id, department_id)
) STRICT, WITHOUT ROWID;

-- Custom roles a user holds, each over a department (with its subtree).
CREATE TABLE user_roles (
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id       INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    department_id INTEGER NOT NULL REFERENCES departments(id),
    PRIMARY KEY (user_id, role_id, department_id)
) STRICT, WITHOUT ROWID;

-- Hashes a user had before the current one, newest last; pruned to the policy's N.
CREATE TABLE password_history (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    password_hash TEXT    NOT NULL,
    replaced_at   TEXT    NOT NULL
) STRICT;
CREATE INDEX password_history_user ON password_history(user_id, id);

-- Every UpdateUserPassword attempt that reached the operation, successful or not.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY,
    at           TEXT    NOT NULL,
    request_id   TEXT    NOT NULL,
    account_id   INTEGER REFERENCES accounts(id),
    account_url  TEXT,
    caller_id    INTEGER REFERENCES users(id),
    caller_email TEXT,
    target_id    INTEGER REFERENCES users(id),
    target_ext_id TEXT,
    outcome      TEXT    NOT NULL,
    detail       TEXT,
    client_addr  TEXT    NOT NULL
) STRICT;
CREATE INDEX audit_log_account ON audit_log(account_id, id);
CREATE INDEX audit_log_target ON audit_log(target_id, id);

-- Outbox for notifiers (ASVS 2.5.5: tell users their password changed).
CREATE TABLE events (
    id                 INTEGER PRIMARY KEY,
    at                 TEXT    NOT NULL,
    kind               TEXT    NOT NULL,
    account_id         INTEGER NOT NULL REFERENCES accounts(id),
    user_id            INTEGER NOT NULL REFERENCES users(id),
    credential_version INTEGER NOT NULL,
    request_id         TEXT    NOT NULL,
    acked_at           TEXT
) STRICT;
"#;

/// Failed-authentication counters (contract §10), kept across restarts. `key` is
/// `pair:<account key>|<e-mail key>` or `addr:<client address>`; times are Unix ms.
const V2: &str = r#"
CREATE TABLE auth_throttle (
    key          TEXT    PRIMARY KEY,
    failures     INTEGER NOT NULL DEFAULT 0,
    window_start INTEGER NOT NULL,
    locked_until INTEGER NOT NULL DEFAULT 0,
    lockouts     INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;
"#;

/// The §10 counters as `domain::lockout::Softlock` states (issue 9): failures per
/// sub-window (`start:count,…`, so any window is counted, not a fixed one), attempts
/// under way (`id:at,…`, reserved before their verification), the lock and its doubling.
/// A count carried over from V2 becomes one sub-window at its window's start.
const V3: &str = r#"
CREATE TABLE auth_throttle_v3 (
    key          TEXT    PRIMARY KEY,
    failures     TEXT    NOT NULL DEFAULT '',
    pending      TEXT    NOT NULL DEFAULT '',
    locked_until INTEGER NOT NULL DEFAULT 0,
    lockouts     INTEGER NOT NULL DEFAULT 0,
    updated_at   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO auth_throttle_v3 (key, failures, locked_until, lockouts, updated_at)
    SELECT key, CASE WHEN failures > 0 THEN window_start || ':' || failures ELSE '' END,
           locked_until, lockouts, max(window_start, locked_until)
      FROM auth_throttle;
DROP TABLE auth_throttle;
ALTER TABLE auth_throttle_v3 RENAME TO auth_throttle;
CREATE INDEX auth_throttle_quiet ON auth_throttle(updated_at);
"#;

/// Calls refused before authentication are audited in aggregate (issue 9): a row per
/// client address, outcome and minute, `count` the calls it stands for and
/// `aggregate_key` what they are counted under (NULL for every other row: NULLs are
/// distinct in a UNIQUE index, in SQLite as in PostgreSQL). Indexes for the retention's
/// pruning by age.
const V4: &str = r#"
ALTER TABLE audit_log ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN aggregate_key TEXT;
CREATE UNIQUE INDEX audit_log_aggregate ON audit_log(aggregate_key);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX events_acked ON events(acked_at) WHERE acked_at IS NOT NULL;
"#;

/// Temporary passwords (contract §11.1): set by an administrator, cleared by the user's
/// own change. Events say how a password was changed (`via`: soap, rest, batch,
/// reset_link) and whether the new one is temporary (§14); rows from before say nothing.
const V5: &str = r#"
ALTER TABLE users ADD COLUMN password_temporary INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN via TEXT;
ALTER TABLE events ADD COLUMN temporary INTEGER NOT NULL DEFAULT 0;
"#;

/// Reset links (contract §11.4): only each token's SHA-256 is kept; a user has at most one
/// live link (issuing one deletes the older). A `password_reset_requested` event holds the
/// link until it is acknowledged, then the link is erased from it.
const V6: &str = r#"
CREATE TABLE reset_tokens (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  BLOB    NOT NULL UNIQUE,
    created_at  TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX reset_tokens_user ON reset_tokens(user_id);
ALTER TABLE events ADD COLUMN link TEXT;
ALTER TABLE events ADD COLUMN link_expires_at TEXT;
"#;

/// Mail delivery of the outbox (contract §14): the attempts made and when the next may be
/// made (Unix ms; while a sender holds an event, the end of its claim). The partial index
/// keeps finding the unacknowledged events cheap however many acknowledged ones are kept.
const V7: &str = r#"
ALTER TABLE events ADD COLUMN mail_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN mail_next_at INTEGER;
CREATE INDEX events_unacked ON events(id) WHERE acked_at IS NULL;
"#;

/// Every migration, oldest first.
/// The `user_version` the migrations below reach.
pub(super) const LATEST: i64 = 7;

pub fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(V1),
        M::up(V2),
        M::up(V3),
        M::up(V4),
        M::up(V5),
        M::up(V6),
        M::up(V7),
    ])
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        assert!(super::migrations().validate().is_ok());
    }

    #[test]
    fn latest_is_the_version_the_migrations_reach() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        super::migrations().to_latest(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, super::LATEST);
    }
}
