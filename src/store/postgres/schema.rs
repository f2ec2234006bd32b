//! The PostgreSQL schema's migrations, applied on open. Several instances may start at
//! once on an empty database, and CockroachDB has no advisory locks: each migration is
//! one transaction that first claims its version in `schema_migrations` (`INSERT … ON
//! CONFLICT DO NOTHING RETURNING`). The first instance's claim wins and it applies the
//! DDL in the same transaction; the others' inserts wait on its uncommitted row, then
//! find it taken and skip the migration. See `migrations/README.md`.

use deadpool_postgres::Pool;
use tokio_postgres::error::SqlState;

use super::StoreError;

/// Every migration, oldest first: (version, SQL).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_schema.sql")),
    (
        2,
        include_str!("migrations/0002_user_department_in_account.sql"),
    ),
];

/// Attempts at creating the bookkeeping table while another instance creates it too.
const CREATE_ATTEMPTS: u32 = 5;

/// Whether every migration of [`MIGRATIONS`] is recorded as applied.
pub(super) async fn applied_all(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<bool, StoreError> {
    let versions: Vec<i64> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
    let row = client
        .query_one(
            "SELECT count(*) FROM schema_migrations WHERE version = ANY($1)",
            &[&versions],
        )
        .await?;
    let applied: i64 = row.get(0);
    Ok(usize::try_from(applied).is_ok_and(|n| n == versions.len()))
}

pub(super) async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        // Two sessions racing on CREATE TABLE IF NOT EXISTS: one gets a unique violation
        // on the catalogue; it is there now.
        match client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version    BIGINT PRIMARY KEY,
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                 )",
            )
            .await
        {
            Ok(()) => break,
            Err(e) if attempt < CREATE_ATTEMPTS && e.code().is_some() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    for (version, sql) in MIGRATIONS {
        // Another instance applying this version holds its claim until it commits: wait
        // for it however long it takes (no statement timeout here), and start over if the
        // database could not serialize the two.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match apply(&mut client, *version, sql).await {
                Err(StoreError::Postgres(e))
                    if attempt < CREATE_ATTEMPTS
                        && e.code().is_some_and(|c| {
                            *c == SqlState::T_R_SERIALIZATION_FAILURE
                                || *c == SqlState::UNIQUE_VIOLATION
                                || *c == SqlState::DUPLICATE_TABLE
                        }) =>
                {
                    continue;
                }
                other => break other?,
            }
        }
    }
    Ok(())
}

/// Applies migration `version` unless it is already claimed; in one transaction.
async fn apply(
    client: &mut deadpool_postgres::Client,
    version: i64,
    sql: &str,
) -> Result<(), StoreError> {
    {
        let tx = client.transaction().await?;
        tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
        let claimed = tx
            .query_opt(
                "INSERT INTO schema_migrations (version) VALUES ($1)
                 ON CONFLICT (version) DO NOTHING RETURNING version",
                &[&version],
            )
            .await?;
        if claimed.is_some() {
            tx.batch_execute(sql).await?;
            tx.commit().await?;
            log::debug!("database migrated to version {version}");
        } else {
            tx.rollback().await?;
        }
    }
    Ok(())
}
