//! A database per test. A service's is cloned from a template its
//! migrations ran into once (per set of migration files, whichever test
//! process gets there first), so that a test pays for a `CREATE DATABASE`
//! and not for the whole migration history.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use diesel::{
    pg::PgConnection, sql_query, sql_types::Text, Connection, QueryableByName, RunQueryDsl,
};
use diesel_migrations::EmbeddedMigrations;
use sha2::{Digest, Sha256};

/// The PostgreSQL server tests use (`TEST_DATABASE_URL`, no database path).
pub fn postgres_server_url() -> String {
    platform::config::var_or("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432")
}

fn admin() -> PgConnection {
    PgConnection::establish(&format!("{}/postgres", postgres_server_url()))
        .expect("PostgreSQL must be running (make test starts it)")
}

/// A database created for one test and dropped (forcibly) after it.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    owned: bool,
}

impl TestDatabase {
    /// An empty database.
    pub fn create(prefix: &str) -> Self {
        Self::create_from(prefix, None)
    }

    /// A database with the platform's and a service's migrations run:
    /// `service` names the folder under `migrations/` that `migrations`
    /// embeds.
    ///
    /// Test runs of other checkouts on the same server (whose migrations, or
    /// whose paths, differ) make templates of their own and drop the others
    /// of the service: when the template is gone, the migrations run into
    /// the new database itself, and the next call makes the template again.
    pub fn migrated(service: &str, migrations: EmbeddedMigrations) -> Self {
        let prefix = service.replace('-', "_");
        let mut migrations = Some(migrations);
        let template = template(service, &mut migrations);
        match Self::try_create_from(&prefix, Some(&template)) {
            Ok(db) => db,
            Err(e) if e.to_string().contains("template database") => {
                forget_template(service);
                let migrations = migrations
                    .unwrap_or_else(|| panic!("the template {template} vanished as it was made"));
                let db = Self::create_from(&prefix, None);
                platform::db::migrate(&db.url, migrations).expect("migrations run");
                db
            }
            Err(e) => panic!("create test database: {e:?}"),
        }
    }

    fn create_from(prefix: &str, template: Option<&str>) -> Self {
        Self::try_create_from(prefix, template).expect("create test database")
    }

    fn try_create_from(prefix: &str, template: Option<&str>) -> diesel::QueryResult<Self> {
        let server = postgres_server_url();
        let name = format!("{prefix}_test_{}", uuid::Uuid::new_v4().simple());
        let sql = match template {
            Some(t) => format!("CREATE DATABASE \"{name}\" TEMPLATE \"{t}\""),
            None => format!("CREATE DATABASE \"{name}\""),
        };
        let mut admin = admin();
        let mut tries = 0;
        // A template being read by someone (autovacuum, say) cannot be
        // copied at that moment: try again shortly.
        loop {
            match sql_query(&sql).execute(&mut admin) {
                Ok(_) => break,
                Err(e)
                    if e.to_string().contains("being accessed by other users") && tries < 100 =>
                {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Self {
            url: format!("{server}/{name}"),
            name,
            owned: true,
        })
    }

    /// The same database, for a second app (a restart, a new release);
    /// only the original drops it.
    pub fn share(&self) -> Self {
        Self {
            name: self.name.clone(),
            url: self.url.clone(),
            owned: false,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        if let Ok(mut admin) =
            PgConnection::establish(&format!("{}/postgres", postgres_server_url()))
        {
            let _ = sql_query(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin);
        }
    }
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    datname: String,
}

/// The templates this process made or found, by service.
fn made_templates() -> &'static Mutex<HashMap<String, String>> {
    static MADE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    MADE.get_or_init(Default::default)
}

/// Forgets `service`'s template, which was dropped: the next [`template`]
/// looks for it (or makes it) again.
fn forget_template(service: &str) {
    made_templates()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(service);
}

/// The template of `service`'s current migrations, made once: its name
/// carries a digest of the migration files, so that a changed migration
/// makes a new one (and the old ones are dropped). `migrations` is taken
/// when the template is made here, left when it was there already.
fn template(service: &str, migrations: &mut Option<EmbeddedMigrations>) -> String {
    let mut made = made_templates().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = made.get(service) {
        return t.clone();
    }
    let prefix = format!("tpl_{}_", service.replace('-', "_"));
    let name = format!("{prefix}{}", digest(service));
    let mut admin = admin();
    // Test processes run side by side: one builds, the others wait.
    sql_query("SELECT pg_advisory_lock(hashtext($1))")
        .bind::<Text, _>(&name)
        .execute(&mut admin)
        .expect("template lock");
    let existing: Vec<Name> =
        sql_query("SELECT datname::text AS datname FROM pg_database WHERE datname LIKE $1")
            .bind::<Text, _>(format!("{prefix}%"))
            .load(&mut admin)
            .expect("list templates");
    if !existing.iter().any(|n| n.datname == name) {
        let building = format!("{name}_building");
        for sql in [
            format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"),
            format!("CREATE DATABASE \"{building}\""),
        ] {
            sql_query(sql)
                .execute(&mut admin)
                .expect("template database");
        }
        let url = format!("{}/{building}", postgres_server_url());
        let migrations = migrations.take().expect("migrations not used yet");
        platform::db::migrate(&url, migrations).expect("migrations run into the template");
        // The migration's connection may take a moment to leave.
        let rename = format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\"");
        let mut tries = 0;
        while let Err(e) = sql_query(&rename).execute(&mut admin) {
            tries += 1;
            assert!(tries < 100, "renaming the template: {e}");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Templates of earlier migrations; one still being cloned stays.
        for old in existing
            .iter()
            .filter(|n| !n.datname.ends_with("_building"))
        {
            let _ = sql_query(format!("DROP DATABASE IF EXISTS \"{}\"", old.datname))
                .execute(&mut admin);
        }
    }
    let _ = sql_query("SELECT pg_advisory_unlock(hashtext($1))")
        .bind::<Text, _>(&name)
        .execute(&mut admin);
    made.insert(service.to_owned(), name.clone());
    name
}

/// The first 16 hex digits of a SHA-256 over the platform's and
/// `service`'s migration files (paths below `migrations/`, and contents).
fn digest(service: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut h = Sha256::new();
    for set in ["platform", service] {
        let mut files = Vec::new();
        walk(&root.join(set), &mut files);
        files.sort();
        for f in files {
            // Relative: checkouts with the same migrations share a template.
            let name = f.strip_prefix(&root).unwrap_or(&f);
            h.update(name.to_string_lossy().as_bytes());
            h.update(std::fs::read(&f).expect("a migration file"));
        }
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading migrations in {}: {e}", dir.display()));
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }

    fn outbox_rows(db: &TestDatabase) -> i64 {
        let mut c = PgConnection::establish(&db.url).unwrap();
        sql_query("SELECT count(*) AS n FROM outbox")
            .get_result::<Count>(&mut c)
            .unwrap()
            .n
    }

    #[test]
    fn a_template_dropped_by_another_run_still_gives_a_migrated_database() {
        let first = TestDatabase::migrated("platform", platform::db::PLATFORM_MIGRATIONS);
        assert_eq!(outbox_rows(&first), 0);
        let template = made_templates().lock().unwrap()["platform"].clone();
        sql_query(format!("DROP DATABASE \"{template}\" WITH (FORCE)"))
            .execute(&mut admin())
            .unwrap();
        let second = TestDatabase::migrated("platform", platform::db::PLATFORM_MIGRATIONS);
        assert_eq!(outbox_rows(&second), 0);
        // And the next one has a template again.
        let third = TestDatabase::migrated("platform", platform::db::PLATFORM_MIGRATIONS);
        assert_eq!(outbox_rows(&third), 0);
        assert!(made_templates().lock().unwrap().contains_key("platform"));
    }
}
