//! Convene's database migrations, one set for SQLite and one for PostgreSQL.
//!
//! Both sets describe the same schema; they differ only where the dialects do (identity
//! columns). The SQL is embedded in the binary so that `convene` runs from a single file, and
//! the [`Migrator`]s are built at run time because the crate avoids sqlx's macros (they would
//! compile sqlx a second time and need a database at build time).
//!
//! Never edit a migration that has been released: add a new numbered file to both folders and
//! list it in [`SQLITE`] and [`POSTGRES`] below.

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// (version, description, SQLite SQL, PostgreSQL SQL), in order.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("../sqlite/0001_foundation.sql"),
        include_str!("../postgres/0001_foundation.sql"),
    ),
    (
        2,
        "governance",
        include_str!("../sqlite/0002_governance.sql"),
        include_str!("../postgres/0002_governance.sql"),
    ),
    (
        3,
        "jobs",
        include_str!("../sqlite/0003_jobs.sql"),
        include_str!("../postgres/0003_jobs.sql"),
    ),
    (
        4,
        "media grants",
        include_str!("../sqlite/0004_media_grants.sql"),
        include_str!("../postgres/0004_media_grants.sql"),
    ),
    (
        5,
        "sign-in mail",
        include_str!("../sqlite/0005_sign_in_mail.sql"),
        include_str!("../postgres/0005_sign_in_mail.sql"),
    ),
    (
        6,
        "federation",
        include_str!("../sqlite/0006_federation.sql"),
        include_str!("../postgres/0006_federation.sql"),
    ),
    (
        7,
        "gathering nodes",
        include_str!("../sqlite/0007_gathering_nodes.sql"),
        include_str!("../postgres/0007_gathering_nodes.sql"),
    ),
    (
        8,
        "remote actors",
        include_str!("../sqlite/0008_remote_actors.sql"),
        include_str!("../postgres/0008_remote_actors.sql"),
    ),
    (
        9,
        "following elsewhere",
        include_str!("../sqlite/0009_following_elsewhere.sql"),
        include_str!("../postgres/0009_following_elsewhere.sql"),
    ),
    (
        10,
        "admission tickets",
        include_str!("../sqlite/0010_admission.sql"),
        include_str!("../postgres/0010_admission.sql"),
    ),
    (
        11,
        "memberships across instances",
        include_str!("../sqlite/0011_memberships.sql"),
        include_str!("../postgres/0011_memberships.sql"),
    ),
    (
        12,
        "blocked passports",
        include_str!("../sqlite/0012_blocked_passports.sql"),
        include_str!("../postgres/0012_blocked_passports.sql"),
    ),
    (
        13,
        "seen activities age",
        include_str!("../sqlite/0013_seen_activities_age.sql"),
        include_str!("../postgres/0013_seen_activities_age.sql"),
    ),
];

/// Which database dialect to migrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The migrator for `dialect`, with every migration embedded.
pub fn migrator(dialect: Dialect) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, description, sqlite, postgres)| {
            let sql = match dialect {
                Dialect::Sqlite => sqlite,
                Dialect::Postgres => postgres,
            };
            Migration::new(
                version,
                description.into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dialects_list_every_migration_in_order() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let m = migrator(dialect);
            let versions: Vec<i64> = m.iter().map(|m| m.version).collect();
            let mut sorted = versions.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(versions, sorted);
            assert_eq!(versions.len(), MIGRATIONS.len());
        }
    }

    #[test]
    fn postgres_set_has_no_sqlite_only_types() {
        for &(_, _, _, postgres) in MIGRATIONS {
            assert!(!postgres.contains("INTEGER PRIMARY KEY"));
        }
    }
}
