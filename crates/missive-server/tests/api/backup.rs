//! `missive backup` and `missive restore` (docs/operations.md, "Back up and
//! restore") with the real binary: a backup taken while sends commit holds
//! every message acknowledged before it started, and a server started on
//! its restored copy serves them all.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use missive_client::protocol::{Message, SendMessageRequest};
use missive_client::{ChatsQuery, MessagesQuery};
use uuid::Uuid;

use crate::durability::Server;
use crate::helpers::{output_text, run_missive, walk_messages};
use crate::test_db::{Backend, TestDb, suite_backend};

const SENDERS: usize = 4;
/// Acknowledged sends before the backup starts.
const BEFORE_BACKUP: usize = 100;

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_every_message_acknowledged_before_it() {
    if suite_backend() == Backend::Postgres {
        // Backups of PostgreSQL are pg_dump's job: the command says so.
        let db = TestDb::for_suite().await;
        let dir = tempfile::tempdir().expect("a temp dir");
        let out = run_missive(
            &["backup", &dir.path().join("x.db").display().to_string()],
            db.url(),
        )
        .await;
        assert!(!out.status.success(), "{}", output_text(&out));
        assert!(
            output_text(&out).contains("pg_dump"),
            "{}",
            output_text(&out)
        );
        let out = run_missive(&["restore", "x.db"], db.url()).await;
        assert!(!out.status.success(), "{}", output_text(&out));
        assert!(
            output_text(&out).contains("pg_restore"),
            "{}",
            output_text(&out)
        );
        return;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let live = sqlite_url(&dir.path().join("live.db"));
    let server = Server::start_with(&live, dir.path(), "live", &[]).await;
    let hub = "+15550000000";
    let hub_token = server
        .client()
        .register(hub, None)
        .await
        .expect("registered")
        .body
        .token;
    let acked: Arc<Mutex<Vec<Message>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..SENDERS {
        let token = server
            .client()
            .register(&format!("+1555000{:04}", i + 1), None)
            .await
            .expect("registered")
            .body
            .token;
        let client = server.client().with_token(token);
        let (acked, stop) = (acked.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            // Bounded: at most 2,000 sends per sender.
            while !stop.load(Ordering::SeqCst) && n < 2_000 {
                let request = SendMessageRequest {
                    receiver: Some(hub.to_owned()),
                    content: format!("sender {i} message {n}"),
                    client_message_id: Some(format!("{i}-{n}")),
                    ..SendMessageRequest::default()
                };
                let sent = client.send_message(&request).await.expect("sent");
                assert_eq!(sent.status, 201);
                acked.lock().expect("lock").push(sent.body);
                n += 1;
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while acked.lock().expect("lock").len() < BEFORE_BACKUP {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the load is too slow"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Everything acknowledged so far must be in the backup; the load goes on.
    let before: Vec<Message> = acked.lock().expect("lock").clone();
    let backup_file = dir.path().join("backups/missive-backup.db");
    std::fs::create_dir_all(backup_file.parent().expect("a dir")).expect("a dir");
    let backup_path = backup_file.display().to_string();
    let out = run_missive(&["backup", &backup_path], &live).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let said = output_text(&out);
    assert!(said.contains(&backup_path), "{said}");
    assert!(said.contains("schema version"), "{said}");
    assert!(said.contains("bytes"), "{said}");
    let during = acked.lock().expect("lock").len();
    // Let more sends commit after the backup, then stop the load.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.expect("a sender does not fail");
    }
    let total = acked.lock().expect("lock").len();
    eprintln!(
        "{} acknowledged before the backup, {during} when it ended, {total} in all",
        before.len()
    );

    // The backup is not overwritten by accident.
    let out = run_missive(&["backup", &backup_path], &live).await;
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("--force"),
        "{}",
        output_text(&out)
    );
    // Nor restored over a database a server has open.
    let out = run_missive(&["restore", "--force", &backup_path], &live).await;
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("in use"),
        "{}",
        output_text(&out)
    );
    drop(server);

    // Restore into a fresh data file and serve it.
    let fresh = dir.path().join("restored/missive.db");
    let restored_url = sqlite_url(&fresh);
    let out = run_missive(&["restore", &backup_path], &restored_url).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let check: String = rusqlite::Connection::open(&fresh)
        .expect("opens")
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("checks");
    assert_eq!(check, "ok");

    let restored = Server::start_with(&restored_url, dir.path(), "restored", &[]).await;
    let hub_client = restored.client().with_token(&hub_token);
    let chats = hub_client
        .list_chats(&ChatsQuery {
            limit: Some(200),
            ..ChatsQuery::default()
        })
        .await
        .expect("the token is in the backup");
    let mut listed: HashMap<Uuid, Message> = HashMap::new();
    for chat in &chats.body {
        let first = hub_client
            .list_messages(
                chat.id,
                &MessagesQuery {
                    limit: Some(200),
                    ..MessagesQuery::default()
                },
            )
            .await
            .expect("listed");
        for message in walk_messages(&hub_client, first, 100)
            .await
            .into_iter()
            .flatten()
        {
            listed.insert(message.id, message);
        }
    }
    let missing: Vec<Uuid> = before
        .iter()
        .filter(|m| {
            listed
                .get(&m.id)
                .is_none_or(|found| (found.seq, &found.content) != (m.seq, &m.content))
        })
        .map(|m| m.id)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} messages acknowledged before the backup are missing",
        missing.len(),
        before.len()
    );
}
