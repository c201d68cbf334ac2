//! `missive migrate [--check]` (docs/operations.md, "Upgrade and
//! migrations") on the suite's store, and databases made by the previous
//! schema, which must keep working without a manual step.

use missive_client::Client;
use missive_client::protocol::{MessageStatus, ServerFrame};
use missive_server::security::tokens::hash_token;

use crate::helpers::{ALICE, TestApp, TestAppBuilder, output_text, run_missive};
use crate::test_db::{Backend, TestDb, suite_backend};
use crate::ws_helpers::{Socket, cursor_number, open};

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

/// Applies `scripts` as an older build did: one transaction each, with its
/// `user_version`.
fn apply_old_schema(conn: &rusqlite::Connection, scripts: &[&str]) {
    for (i, script) in scripts.iter().enumerate() {
        conn.execute_batch(&format!(
            "BEGIN; {script}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))
        .expect("the old schema");
    }
}

/// A server started on the old database `db` (which it migrates), and the
/// old user of `token` resuming on it from `since`.
async fn upgraded_server(db: &TestDb, token: &str, since: &str) -> (TestApp, Client, Socket) {
    let app = TestAppBuilder::new()
        .configure(|config| config.database_url = db.url().to_owned())
        .spawn()
        .await;
    let user = app.client.with_token(token);
    let socket = open(
        &user,
        &missive_client::ws::WsQuery::token(token).since(since),
    )
    .await;
    (app, user, socket)
}

/// Sends "after the upgrade" as `user` to `target` and checks that it
/// arrives on `socket` at event number `cursor`.
async fn assert_a_send_arrives_at(
    user: &Client,
    socket: &mut Socket,
    target: missive_client::protocol::SendMessageRequest,
    cursor: u64,
) {
    let sent = user
        .send_message(&missive_client::protocol::SendMessageRequest {
            content: "after the upgrade".into(),
            ..target
        })
        .await
        .expect("sent");
    let (message, at) = socket.next_message().await;
    assert_eq!(message.id, sent.body.id);
    assert_eq!(cursor_number(&at), cursor);
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
            apply_old_schema(&conn, &SQLITE_V3);
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
    let (app, alice, mut socket) = upgraded_server(&db, token, "5").await;
    assert_eq!(
        socket.cursor, "5",
        "the old user's log goes on where it was"
    );
    socket.assert_silent().await;
    let (bob, _) = app.register("+0987654321").await;
    let sent = missive_client::protocol::SendMessageRequest {
        receiver: Some(bob.phone_number.clone()),
        ..Default::default()
    };
    assert_a_send_arrives_at(&alice, &mut socket, sent, 6).await;
    let check = run_missive(&["migrate", "--check"], db.url()).await;
    assert!(check.status.success(), "{}", output_text(&check));
}

/// The SQLite schema before the event log's ids became 16-byte blobs (0007).
const SQLITE_V6: [&str; 6] = [
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_login_codes.sql"),
    include_str!("../../migrations/sqlite/0003_health.sql"),
    include_str!("../../migrations/sqlite/0004_sessions.sql"),
    include_str!("../../migrations/sqlite/0005_event_retention.sql"),
    include_str!("../../migrations/sqlite/0006_push_outbox.sql"),
];

/// Alice and Bob, their chat, one message from Alice and Bob's receipt,
/// with the event log written as the schema before 0007 kept it (text ids).
/// `NOW` is replaced by the current time (older events would be pruned by
/// the default retention as the server starts).
const OLD_CHAT: &str = "
    INSERT INTO users (id, phone_number, created_at, event_seq) VALUES
        ('0190f0a0-0000-7000-8000-000000000001', '+1234567890', 0, 2),
        ('0190f0a0-0000-7000-8000-000000000002', '+0987654321', 0, 1);
    INSERT INTO chats (id, direct_key, created_at, last_seq, activity) VALUES
        ('0190f0a0-0000-7000-8000-0000000000c1',
         '0190f0a0-0000-7000-8000-000000000001:0190f0a0-0000-7000-8000-000000000002', 0, 1, 1);
    INSERT INTO chat_members (chat_id, user_id, position, delivered_seq, read_seq) VALUES
        ('0190f0a0-0000-7000-8000-0000000000c1', '0190f0a0-0000-7000-8000-000000000001', 0, 0, 0),
        ('0190f0a0-0000-7000-8000-0000000000c1', '0190f0a0-0000-7000-8000-000000000002', 1, 1, 1);
    INSERT INTO messages (id, chat_id, seq, sender_id, content, created_at) VALUES
        ('0190f0a0-0000-7000-8000-0000000000a1', '0190f0a0-0000-7000-8000-0000000000c1', 1,
         '0190f0a0-0000-7000-8000-000000000001', 'before the upgrade', NOW);
    INSERT INTO events (user_id, seq, kind, chat_id, message_id, status, actor, created_at) VALUES
        ('0190f0a0-0000-7000-8000-000000000001', 1, 'message', '0190f0a0-0000-7000-8000-0000000000c1',
         '0190f0a0-0000-7000-8000-0000000000a1', NULL, NULL, NOW),
        ('0190f0a0-0000-7000-8000-000000000002', 1, 'message', '0190f0a0-0000-7000-8000-0000000000c1',
         '0190f0a0-0000-7000-8000-0000000000a1', NULL, NULL, NOW),
        ('0190f0a0-0000-7000-8000-000000000001', 2, 'receipt', '0190f0a0-0000-7000-8000-0000000000c1',
         '0190f0a0-0000-7000-8000-0000000000a1', 'read', '+0987654321', NOW);";

#[tokio::test]
async fn an_event_log_written_before_the_compact_ids_replays_the_same_after_the_upgrade() {
    if suite_backend() != Backend::Sqlite {
        return; // A SQLite schema change; PostgreSQL stores uuids natively.
    }
    let db = TestDb::for_suite().await;
    let token = "old-token-of-alice";
    {
        let path = db.url().trim_start_matches("sqlite://").to_owned();
        let conn = rusqlite::Connection::open(&path).expect("opens");
        apply_old_schema(&conn, &SQLITE_V6);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis();
        conn.execute_batch(&OLD_CHAT.replace("NOW", &now.to_string()))
            .expect("old data");
        conn.execute(
            "INSERT INTO tokens (token_hash, user_id, created_at, last_used_at, id)
             VALUES (?1, '0190f0a0-0000-7000-8000-000000000001', 0,
                     CAST(unixepoch('subsec') * 1000 AS INTEGER),
                     '0190f0a0-0000-4000-8000-0000000000f1')",
            [hash_token(token)],
        )
        .expect("old token");
    }

    let (_app, alice, mut socket) = upgraded_server(&db, token, "0").await;
    assert_eq!(socket.cursor, "2", "the log keeps its numbers");
    let (message, cursor) = socket.next_message().await;
    assert_eq!(
        message.id.to_string(),
        "0190f0a0-0000-7000-8000-0000000000a1"
    );
    assert_eq!(message.content, "before the upgrade");
    assert_eq!(cursor_number(&cursor), 1);
    match socket.next().await {
        ServerFrame::Receipt {
            cursor,
            message_id,
            status,
            user,
            ..
        } => {
            assert_eq!(cursor_number(&cursor), 2);
            assert_eq!(
                message_id.to_string(),
                "0190f0a0-0000-7000-8000-0000000000a1"
            );
            assert_eq!(status, MessageStatus::Read);
            assert_eq!(user, "+0987654321");
        }
        other => panic!("expected the receipt, got {other:?}"),
    }

    // New events go on from the converted log, in the new form.
    let sent = missive_client::protocol::SendMessageRequest {
        chat_id: message.chat_id.into(),
        ..Default::default()
    };
    assert_a_send_arrives_at(&alice, &mut socket, sent, 3).await;
}

#[tokio::test]
async fn migrate_refuses_to_rewrite_the_event_log_under_a_running_server() {
    if suite_backend() != Backend::Sqlite {
        return; // The rewrite (0007) is SQLite's only.
    }
    let db = TestDb::for_suite().await;
    let path = db.url().trim_start_matches("sqlite://").to_owned();
    let conn = rusqlite::Connection::open(&path).expect("opens");
    let _: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .expect("WAL, as a server runs it");
    apply_old_schema(&conn, &SQLITE_V6);
    // An old server's connection, in the middle of its work.
    conn.execute_batch("BEGIN; SELECT COUNT(*) FROM events;")
        .expect("a read transaction");

    let refused = run_missive(&["migrate"], db.url()).await;
    assert!(!refused.status.success(), "{}", output_text(&refused));
    assert!(
        output_text(&refused).contains("in use"),
        "{}",
        output_text(&refused)
    );
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("reads");
    assert_eq!(version, 6, "nothing was migrated");

    conn.execute_batch("COMMIT;").expect("ends");
    drop(conn);
    let migrated = run_missive(&["migrate"], db.url()).await;
    assert!(migrated.status.success(), "{}", output_text(&migrated));
}
