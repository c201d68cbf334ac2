//! Event retention (README, "WebSocket"; docs/operations.md, "Retention"):
//! old events are pruned, a resume from a pruned cursor gets `ready` then
//! `resync {cursor}`, a resume from a kept cursor replays as before, and
//! event numbers never go backwards, even when a user's whole log was pruned
//! and the server restarted. On the suite's store (SQLite or PostgreSQL).

use std::sync::Arc;
use std::time::Duration;

use missive_client::protocol::ServerFrame;
use missive_server::domain::now_ms;
use missive_server::store::{DynStore, EventLog};

use crate::helpers::{ALICE, BOB, TestAppBuilder};
use crate::test_db::TestDb;
use crate::ws_helpers::{Socket, cursor_number, open_as, resume_as, spawn_app_on};

/// A second handle on the app's database: the test prunes with an explicit
/// cutoff through it, as a node's maintenance task would.
async fn store_of(db: &TestDb) -> DynStore {
    missive_server::store::open(
        db.url(),
        missive_server::store::OpenOptions {
            pool_size: 2,
            ..Default::default()
        },
    )
    .await
    .expect("the store opens")
}

/// Prunes every event created before `cutoff_ms`, step by step.
async fn prune_before(store: &DynStore, cutoff_ms: i64) -> u64 {
    let mut total = 0;
    loop {
        let deleted = store.prune_events(cutoff_ms, 100).await.expect("prunes");
        if deleted == 0 {
            return total;
        }
        total += deleted;
    }
}

/// The frame after `ready`, which must be `resync`: its cursor.
async fn expect_resync(socket: &mut Socket) -> String {
    match socket.next().await {
        ServerFrame::Resync { cursor } => cursor,
        other => panic!("expected a resync frame right after ready, got {other:?}"),
    }
}

#[tokio::test]
async fn a_resume_from_a_pruned_cursor_gets_ready_then_resync_and_goes_on_from_its_cursor() {
    let db = Arc::new(TestDb::for_suite().await);
    let app = spawn_app_on(&db).await;
    let store = store_of(&db).await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let start = open_as(&bob).await.cursor;
    let first = alice.send_to(BOB, "before the pruning").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(prune_before(&store, now_ms()).await >= 1);

    let mut socket = resume_as(&bob, &start).await;
    let resync = expect_resync(&mut socket).await;
    assert_eq!(resync, socket.cursor, "continue from the newest event");
    assert!(cursor_number(&resync) > cursor_number(&start));
    socket.assert_silent().await;

    // The client re-lists and finds what it missed.
    let chats = bob.chats().await;
    assert_eq!(chats.len(), 1);
    let listed = bob.messages(chats[0].id, 50).await;
    assert_eq!(listed.iter().map(|m| m.id).collect::<Vec<_>>(), [first.id]);

    // Later events come on this connection, after the resync cursor ...
    let second = alice.send_to(BOB, "after the pruning").await;
    let (message, cursor) = socket.next_message().await;
    assert_eq!(message.id, second.id);
    assert!(cursor_number(&cursor) > cursor_number(&resync));

    // ... and a resume from the resync cursor replays them, without resync.
    let mut resumed = resume_as(&bob, &resync).await;
    let (message, again) = resumed.next_message().await;
    assert_eq!((message.id, again), (second.id, cursor));
    resumed.assert_silent().await;
    store.close().await;
}

#[tokio::test]
async fn a_resume_from_a_kept_cursor_gets_no_resync_and_every_later_event() {
    let db = Arc::new(TestDb::for_suite().await);
    let app = spawn_app_on(&db).await;
    let store = store_of(&db).await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let start = open_as(&bob).await.cursor;
    alice.send_to(BOB, "old").await;
    let mut watching = resume_as(&bob, &start).await;
    let (_, kept_from) = watching.next_message().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cutoff = now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut newer = Vec::new();
    for i in 0..3 {
        newer.push(alice.send_to(BOB, &format!("new {i}")).await.id);
    }
    assert_eq!(
        prune_before(&store, cutoff).await,
        2,
        "both users' old event"
    );
    let log: EventLog = store.event_log(bob.user.id).await.expect("the log");
    assert_eq!(log.pruned_through, cursor_number(&kept_from) as i64);

    // At the oldest kept cursor: exactly as without retention.
    let mut socket = resume_as(&bob, &kept_from).await;
    let mut replayed = Vec::new();
    for _ in 0..3 {
        replayed.push(socket.next_message().await.0.id);
    }
    assert_eq!(replayed, newer);
    socket.assert_silent().await;

    // Before it: resync.
    let mut socket = resume_as(&bob, &start).await;
    expect_resync(&mut socket).await;
    store.close().await;
}

#[tokio::test]
async fn event_numbers_continue_above_a_fully_pruned_log_after_a_restart() {
    let db = Arc::new(TestDb::for_suite().await);
    let app = spawn_app_on(&db).await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    for i in 0..3 {
        alice.send_to(BOB, &format!("message {i}")).await;
    }
    let old_cursor = open_as(&bob).await.cursor;
    assert_eq!(cursor_number(&old_cursor), 3);
    app.stop().await;

    let store = store_of(&db).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        prune_before(&store, now_ms()).await,
        6,
        "every event of both"
    );
    assert!(
        store
            .events_since(bob.user.id, 0, 10)
            .await
            .expect("reads")
            .is_empty()
    );
    store.close().await;

    // A restart: counters are reloaded from the database, not from the
    // (now empty) events.
    let app = spawn_app_on(&db).await;
    let (alice, bob) = (app.again(&alice), app.again(&bob));
    let mut socket = resume_as(&bob, &old_cursor).await;
    assert_eq!(socket.cursor, old_cursor, "the cursor did not go back");
    socket.assert_silent().await;
    let next = alice.send_to(BOB, "after the restart").await;
    let (message, cursor) = socket.next_message().await;
    assert_eq!(message.id, next.id);
    assert_eq!(cursor_number(&cursor), 4, "numbers go on, never reused");

    // A cursor from before the pruning gets resync, never a silent gap.
    let mut socket = resume_as(&bob, "1").await;
    assert_eq!(expect_resync(&mut socket).await, "4");
    socket.assert_silent().await;
    app.stop().await;
}

#[tokio::test]
async fn a_cursor_this_database_never_handed_out_gets_resync() {
    let db = Arc::new(TestDb::for_suite().await);
    let app = spawn_app_on(&db).await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    alice.send_to(BOB, "one").await;
    // As after a restore from an older backup: the client is ahead.
    let mut socket = resume_as(&bob, "1000").await;
    assert_eq!(socket.cursor, "1");
    assert_eq!(expect_resync(&mut socket).await, "1");
    let next = alice.send_to(BOB, "two").await;
    let (message, cursor) = socket.next_message().await;
    assert_eq!((message.id, cursor.as_str()), (next.id, "2"));
}

#[tokio::test]
async fn with_a_short_event_retention_the_server_prunes_by_itself() {
    let app = TestAppBuilder::new()
        .configure(|config| {
            config.event_retention =
                missive_server::config::Retention(Some(Duration::from_secs(1)));
        })
        .spawn()
        .await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let start = open_as(&bob).await.cursor;
    alice.send_to(BOB, "soon pruned").await;

    let store = store_of(&app.database()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let log = store.event_log(bob.user.id).await.expect("the log");
        if log.pruned_through == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not pruned within 20 s: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let none: Vec<_> = store.events_since(bob.user.id, 0, 10).await.expect("reads");
    assert!(none.is_empty(), "{none:?}");
    let mut socket = resume_as(&bob, &start).await;
    expect_resync(&mut socket).await;
    store.close().await;
}
