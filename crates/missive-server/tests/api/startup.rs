//! Startup refuses a database it cannot use, naming the file; damage found
//! while serving turns requests and `/readyz` into 503.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use missive_server::config::StartupCheck;
use missive_server::{Application, Config};

use crate::helpers::{ALICE, spawn_app_with};

fn config_for(db: &Path) -> Config {
    Config {
        bind: "127.0.0.1".into(),
        port: 0,
        database_url: format!("sqlite://{}", db.display()),
        send_rate_limit: 0,
        auth_rate_limit: 0,
        ..Config::default()
    }
}

async fn build_error(config: Config) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    match Application::build(config, listener).await {
        Ok(_) => panic!("the application started"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused_naming_the_file_and_both_versions() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("newer.db");
    rusqlite::Connection::open(&db)
        .expect("opens")
        .execute_batch("PRAGMA user_version = 99;")
        .expect("sets the version");

    let error = build_error(config_for(&db)).await;

    assert!(error.contains(&db.display().to_string()), "{error}");
    assert!(error.contains("99"), "{error}");
    assert!(error.contains("newer"), "{error}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("garbage.db");
    std::fs::write(&db, vec![0x5a; 64 * 1024]).expect("writes");

    let error = build_error(config_for(&db)).await;

    assert!(error.contains(&db.display().to_string()), "{error}");
    assert!(error.contains("not a database"), "{error}");
}

/// A database with users, then every page after the first overwritten.
async fn corrupt_database(db: &Path) {
    let app = spawn_app_with(|config| {
        config.database_url = format!("sqlite://{}", db.display());
    })
    .await;
    for i in 0..50 {
        app.register(&format!("+1555000{i:04}")).await;
    }
    app.stop().await.expect("a clean stop");
    // Every table's and index's root page gets garbage; the schema itself
    // (page 1 and its overflow pages) stays readable, so the file opens.
    let (page_size, roots): (u64, Vec<u64>) = {
        let conn = rusqlite::Connection::open(db).expect("opens");
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .expect("page size");
        let mut roots = conn
            .prepare("SELECT rootpage FROM sqlite_master WHERE rootpage > 1")
            .expect("prepares");
        let roots = roots
            .query_map([], |r| r.get::<_, i64>(0))
            .expect("queries")
            .map(|r| r.expect("a root page").unsigned_abs())
            .collect();
        (page_size.unsigned_abs(), roots)
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(db)
        .expect("opens");
    let garbage: Vec<u8> = (0..page_size).map(|i| (i * 31 % 251) as u8).collect();
    for root in roots {
        file.seek(SeekFrom::Start((root - 1) * page_size))
            .expect("seeks");
        file.write_all(&garbage).expect("corrupts");
    }
    file.sync_all().expect("syncs");
}

#[tokio::test]
async fn a_corrupt_database_is_refused_at_startup() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("corrupt.db");
    corrupt_database(&db).await;

    let error = build_error(config_for(&db)).await;

    assert!(error.contains(&db.display().to_string()), "{error}");
    assert!(error.contains("corrupt"), "{error}");
}

#[tokio::test]
async fn with_the_check_off_corruption_found_while_serving_gives_503_and_an_unready_node() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("corrupt.db");
    corrupt_database(&db).await;

    let app = spawn_app_with(|config| {
        config.database_url = format!("sqlite://{}", db.display());
        config.database_startup_check = StartupCheck::Off;
    })
    .await;

    let lookup = app
        .get(&format!("/chats?phoneNumber=%2B{}", &ALICE[1..]))
        .await;
    assert_eq!(
        lookup.status, 503,
        "a read of damaged pages: {}",
        lookup.body
    );
    let register = app
        .post_json(
            "/register",
            &serde_json::json!({"phoneNumber": "+15559999999"}),
        )
        .await;
    assert_eq!(register.status, 503, "{}", register.body);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    let body: serde_json::Value = serde_json::from_str(&ready.body).expect("JSON");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["store"], "down");
    assert_eq!(body["code"], "unavailable");
    assert_eq!(app.get("/healthz").await.status, 200);
}

/// Startup errors over URLs with passwords: the password never shows, in
/// any of the forms a URL can carry one.
#[tokio::test]
async fn startup_errors_never_show_a_password_of_the_configured_urls() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let sqlite = dir.path().join("ok.db");
    let cases: Vec<(&str, Config)> = vec![
        (
            "an unsupported scheme",
            Config {
                database_url: "mysql://admin:secretpw@db.invalid/missive".into(),
                ..config_for(&sqlite)
            },
        ),
        (
            // Port 1 on loopback: refused at once.
            "an unreachable PostgreSQL",
            Config {
                database_url: "postgres://admin:secretpw@127.0.0.1:1/missive".into(),
                ..config_for(&sqlite)
            },
        ),
        (
            "a PostgreSQL password in the query",
            Config {
                database_url: "postgresql://admin@127.0.0.1:1/missive?password=secretpw".into(),
                ..config_for(&sqlite)
            },
        ),
        (
            "a malformed PostgreSQL URL",
            Config {
                database_url: "postgres://admin:secretpw@127.0.0.1:notaport/missive".into(),
                ..config_for(&sqlite)
            },
        ),
        (
            "a malformed Redis URL",
            Config {
                redis_url: Some("redis://:secretpw@127.0.0.1:notaport/0".into()),
                ..config_for(&sqlite)
            },
        ),
    ];
    for (case, config) in cases {
        let error = build_error(config).await;
        assert!(!error.contains("secretpw"), "{case}: {error}");
        assert!(!error.is_empty(), "{case}");
    }
}

/// The binary's one ERROR line for a database it cannot reach names the
/// URL without its password.
#[tokio::test]
async fn the_binary_logs_no_password_when_the_database_is_unreachable() {
    let run = tokio::task::spawn_blocking(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_missive"))
            .env(
                "DATABASE_URL",
                "postgres://admin:secretpw@127.0.0.1:1/missive",
            )
            .env("REDIS_URL", "redis://:redispw@127.0.0.1:1/0")
            .env("PORT", "0")
            .env("BIND", "127.0.0.1")
            .env("LOG_LEVEL", "DEBUG")
            .output()
    });
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("the binary gives up within a minute")
        .expect("the task runs")
        .expect("the binary runs");
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{logs}");
    assert!(logs.contains("cannot start"), "{logs}");
    assert!(
        logs.contains("127.0.0.1:1"),
        "names where it failed: {logs}"
    );
    assert!(!logs.contains("secretpw"), "{logs}");
    assert!(!logs.contains("redispw"), "{logs}");
}
