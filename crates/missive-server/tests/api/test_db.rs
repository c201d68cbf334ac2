//! A fresh database per test, on the store the run asks for:
//! `MISSIVE_TEST_STORE=sqlite` (default: a file in a temp dir) or
//! `MISSIVE_TEST_STORE=postgres` (a database `t_<uuid>` created through the
//! admin URL `MISSIVE_TEST_POSTGRES_URL`, dropped when the test ends).
//!
//! Without a reachable PostgreSQL, PostgreSQL tests are skipped loudly —
//! unless `MISSIVE_TEST_REQUIRE_SERVICES=1` (CI), which makes them fail.

use std::time::Duration;

use tempfile::TempDir;
use uuid::Uuid;

/// The admin connection when `MISSIVE_TEST_POSTGRES_URL` is unset.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A store backend of the test suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// The backend of the API suite, from `MISSIVE_TEST_STORE`.
pub fn suite_backend() -> Backend {
    match std::env::var("MISSIVE_TEST_STORE").as_deref() {
        Ok("postgres") | Ok("postgresql") => Backend::Postgres,
        Ok("sqlite") | Ok("") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("MISSIVE_TEST_STORE={other:?}: expected sqlite or postgres"),
    }
}

fn services_required() -> bool {
    std::env::var("MISSIVE_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn admin_url() -> String {
    std::env::var("MISSIVE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A database that exists for one test (or for the nodes of one test).
pub enum TestDb {
    /// A SQLite file in a temp dir, removed with it.
    Sqlite {
        /// `sqlite://…`.
        url: String,
        /// The directory of the file, removed on drop.
        _dir: TempDir,
    },
    /// A PostgreSQL database, dropped (`WITH (FORCE)`) on drop.
    Postgres {
        /// `postgres://…/t_<uuid>`.
        url: String,
        /// Its name.
        name: String,
        /// The admin connection it was created through.
        admin: String,
    },
}

impl TestDb {
    /// A fresh database of the suite's backend. When PostgreSQL is asked for
    /// but unreachable (and not required), the whole run is skipped: it prints
    /// `skipped: no PostgreSQL at …` and exits successfully, because a helper
    /// cannot make the calling test return early and every test of this run
    /// would need the database.
    pub async fn for_suite() -> TestDb {
        match suite_backend() {
            Backend::Sqlite => TestDb::sqlite(),
            Backend::Postgres => match TestDb::postgres().await {
                Some(db) => db,
                None => {
                    loud(
                        "skipped: MISSIVE_TEST_STORE=postgres but no PostgreSQL answers; \
                         the run ends here without testing anything",
                    );
                    std::process::exit(0);
                }
            },
        }
    }

    /// A fresh SQLite file.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        TestDb::Sqlite { url, _dir: dir }
    }

    /// A fresh PostgreSQL database, or `None` (after saying so loudly) when
    /// PostgreSQL is unreachable and `MISSIVE_TEST_REQUIRE_SERVICES` is not 1.
    pub async fn postgres() -> Option<TestDb> {
        let admin = admin_url();
        let name = format!("t_{}", Uuid::now_v7().simple());
        match admin_execute(&admin, &format!("CREATE DATABASE \"{name}\"")).await {
            Ok(()) => Some(TestDb::Postgres {
                url: with_database(&admin, &name),
                name,
                admin,
            }),
            Err(e) if services_required() => {
                panic!("no PostgreSQL at {admin} (MISSIVE_TEST_REQUIRE_SERVICES=1): {e}")
            }
            Err(e) => {
                loud(&format!("skipped: no PostgreSQL at {admin}: {e}"));
                None
            }
        }
    }

    /// The `DATABASE_URL` of this database.
    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let TestDb::Postgres { name, admin, .. } = self else {
            return;
        };
        let (name, admin) = (name.clone(), admin.clone());
        // Drop may run inside a runtime, which cannot block on another: a
        // plain thread with a small runtime of its own does the drop.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(admin_execute(
                &admin,
                &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
            ))
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("warning: could not drop a test database: {e}");
        }
    }
}

/// Writes `line` to the real stderr: the test harness captures `eprintln!`
/// of passing tests, and a skip must be seen.
fn loud(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n*** {line} ***\n");
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Runs one statement on the admin database.
async fn admin_execute(admin: &str, statement: &str) -> Result<(), String> {
    let mut config: tokio_postgres::Config = admin.parse().map_err(|e| format!("{e}"))?;
    config.connect_timeout(Duration::from_secs(3));
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let result = client
        .batch_execute(statement)
        .await
        .map_err(|e| e.to_string());
    drop(client);
    let _ = driver.await;
    result
}
