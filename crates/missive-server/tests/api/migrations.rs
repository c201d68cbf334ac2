//! `missive migrate [--check]` (docs/operations.md, "Upgrade and
//! migrations") on the suite's store, and databases made by the previous
//! schema, which must keep working without a manual step.

use missive_server::security::tokens::hash_token;

use crate::helpers::{ALICE, TestAppBuilder, output_text, run_missive};
use crate::test_db::{Backend, TestDb, suite_backend};
use crate::ws_helpers::{cursor_number, open};

#[tokio::test]
async fn migrate_check_reports_pending_migrations_until_migrate_applies_them() {
    let db = TestDb::for_suite().await;
    let check = run_missive(&["migrate", "--check"], db.url()).await;
    assert!(!check.status.success(), "{}", output_text(&check));
    assert!(
        output_text(&check).contains("pending"),
        "{}",
        output_text(&check)
    );

    let migrate = run_missive(&["migrate"], db.url()).await;
    assert!(migrate.status.success(), "{}", output_text(&migrate));
    assert!(
        output_text(&migrate).contains("applied"),
        "{}",
        output_text(&migrate)
    );

    let check = run_missive(&["migrate", "--check"], db.url()).await;
    assert!(check.status.success(), "{}", output_text(&check));
    assert!(
        output_text(&check).contains("current"),
        "{}",
        output_text(&check)
    );

    let again = run_missive(&["migrate"], db.url()).await;
    assert!(again.status.success(), "{}", output_text(&again));
    assert!(
        output_text(&again).contains("nothing to do"),
        "{}",
        output_text(&again)
    );

    // A server starts on the migrated database as on any other.
    let app = TestAppBuilder::new()
        .configure(|config| config.database_url = db.url().to_owned())
        .spawn()
        .await;
    app.register(ALICE).await;
}

#[tokio::test]
async fn migrate_refuses_a_database_newer_than_this_build_naming_both_versions() {
    let db = TestDb::for_suite().await;
    match suite_backend() {
        Backend::Sqlite => {
            let path = db.url().trim_start_matches("sqlite://").to_owned();
            rusqlite::Connection::open(&path)
                .expect("opens")
                .execute_batch("PRAGMA user_version = 99;")
                .expect("a future version");
        }
        Backend::Postgres => {
            let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
                .await
                .expect("connects");
            let driver = tokio::spawn(connection);
            client
                .batch_execute(
                    "CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at bigint NOT NULL);
                     INSERT INTO schema_migrations VALUES (99, 0);",
                )
                .await
                .expect("a future version");
            drop(client);
            let _ = driver.await;
        }
    }
    for args in [&["migrate", "--check"][..], &["migrate"][..]] {
        let output = run_missive(args, db.url()).await;
        let said = output_text(&output);
        assert!(!output.status.success(), "{args:?}: {said}");
        assert!(said.contains("99"), "{args:?}: {said}");
        assert!(said.contains("newer"), "{args:?}: {said}");
    }
}

/// The schema scripts of the previous build, exactly as it applied them.
const SQLITE_V3: [&str; 3] = [
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_login_codes.sql"),
    include_str!("../../migrations/sqlite/0003_health.sql"),
];
const POSTGRES_V1: &str = include_str!("../../migrations/postgres/0001_init.sql");

/// A user with 5 events behind them, made with the previous schema; returns their token.
const OLD_USER: &str = "INSERT INTO users (id, phone_number, created_at, event_seq)
     VALUES ('0190f0a0-0000-7000-8000-000000000001', '+1234567890', 0, 5)";

#[tokio::test]
async fn a_database_of_the_previous_schema_is_upgraded_at_start_and_keeps_its_cursors() {
    let db = TestDb::for_suite().await;
    let token = "old-token-of-alice";
    let add_token = format!(
        "INSERT INTO tokens (token_hash, user_id, created_at)
         VALUES ('{}', '0190f0a0-0000-7000-8000-000000000001', 0)",
        hash_token(token)
    );
    match suite_backend() {
        Backend::Sqlite => {
            let path = db.url().trim_start_matches("sqlite://").to_owned();
            let conn = rusqlite::Connection::open(&path).expect("opens");
            for (i, script) in SQLITE_V3.iter().enumerate() {
                conn.execute_batch(&format!(
                    "BEGIN; {script}; PRAGMA user_version = {}; COMMIT;",
                    i + 1
                ))
                .expect("the old schema");
            }
            conn.execute_batch(&format!("{OLD_USER}; {add_token};"))
                .expect("old data");
        }
        Backend::Postgres => {
            let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
                .await
                .expect("connects");
            let driver = tokio::spawn(connection);
            client
                .batch_execute(&format!(
                    "CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at bigint NOT NULL);
                     {POSTGRES_V1};
                     INSERT INTO schema_migrations VALUES (1, 0);
                     {OLD_USER}; {add_token};"
                ))
                .await
                .expect("the old schema and data");
            drop(client);
            let _ = driver.await;
        }
    }
    let check = run_missive(&["migrate", "--check"], db.url()).await;
    assert!(!check.status.success(), "{}", output_text(&check));
    // Every migration newer than the old schema (3 on SQLite, 1 on PostgreSQL) is pending.
    let (dir, old_version) = match suite_backend() {
        Backend::Sqlite => ("sqlite", 3),
        Backend::Postgres => ("postgres", 1),
    };
    let known = std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
        .expect("the migrations directory")
        .count();
    let pending = format!("{} pending", known - old_version);
    assert!(
        output_text(&check).contains(&pending),
        "{}",
        output_text(&check)
    );

    // No manual step: the server applies the migration as it starts.
    let app = TestAppBuilder::new()
        .configure(|config| config.database_url = db.url().to_owned())
        .spawn()
        .await;
    let alice = app.client.with_token(token);
    let mut socket = open(
        &alice,
        &missive_client::ws::WsQuery::token(token).since("5"),
    )
    .await;
    assert_eq!(
        socket.cursor, "5",
        "the old user's log goes on where it was"
    );
    socket.assert_silent().await;
    let (bob, _) = app.register("+0987654321").await;
    let sent = alice
        .send_message(&missive_client::protocol::SendMessageRequest {
            receiver: Some(bob.phone_number.clone()),
            content: "after the upgrade".into(),
            ..Default::default()
        })
        .await
        .expect("sent");
    let (message, cursor) = socket.next_message().await;
    assert_eq!(message.id, sent.body.id);
    assert_eq!(cursor_number(&cursor), 6);
    let check = run_missive(&["migrate", "--check"], db.url()).await;
    assert!(check.status.success(), "{}", output_text(&check));
}
