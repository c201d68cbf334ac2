//! A client that does not read its socket is disconnected once its outbound
//! queue is full, and then resumes (README, "WebSocket"); other users' connections keep
//! receiving normally meanwhile.

use std::time::{Duration, Instant};

use missive_client::protocol::{Message, ServerFrame};
use missive_client::ws::WsError;

use crate::helpers::{ALICE, BOB, CAROL, DAVE, TestApp, TestUser, spawn_app};
use crate::ws_helpers::{Socket, open_as, resume_as};

/// Messages pushed to the slow reader: well over the 1024-frame queue plus
/// the socket buffers (about 12 MB of frames).
const FLOOD: usize = 3000;
/// Senders flooding in parallel.
const FLOODERS: usize = 3;
/// Every this many flood messages, one goes to the healthy reader.
const HEALTHY_EVERY: usize = 10;

/// The `missive_websocket_connections` gauge of `/metrics`.
async fn open_connections(app: &TestApp) -> u64 {
    let raw = app.get("/metrics").await;
    assert_eq!(raw.status, 200);
    raw.body
        .lines()
        .find_map(|line| line.strip_prefix("missive_websocket_connections "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no missive_websocket_connections gauge in {}", raw.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_disconnected_while_others_keep_receiving() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    let dave = app.user(DAVE).await;
    let bob = app.user(BOB).await;
    let carol = app.user(CAROL).await;
    let plus = app.user("+5550000001").await;
    // Bob connects and never reads; Carol reads everything.
    let slow = open_as(&bob).await;
    let mut healthy = open_as(&carol).await;
    assert_eq!(open_connections(&app).await, 2);

    let flooders: Vec<TestUser> = vec![alice.clone(), dave.clone(), plus.clone()];
    let mut tasks = Vec::new();
    for (i, sender) in flooders.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut to_carol = Vec::new();
            for n in 0..FLOOD / FLOODERS {
                let content = format!("{i}/{n} {}", "x".repeat(4000));
                sender.send_to(BOB, &content).await;
                if n % HEALTHY_EVERY == 0 {
                    to_carol.push(sender.send_to(CAROL, &format!("{i}/{n} for carol")).await);
                }
            }
            to_carol
        }));
    }
    let started = Instant::now();
    let mut carol_got: Vec<Message> = Vec::new();
    let mut all_sent = false;
    let mut expected_for_carol: Vec<Message> = Vec::new();
    let mut slow_dropped_at = None;
    // Carol reads as she goes; the server must drop Bob, not Carol.
    loop {
        match healthy.conn.next_frame(Duration::from_millis(100)).await {
            Ok(ServerFrame::Message { message, .. }) => carol_got.push(message),
            Ok(other) => panic!("carol got an unexpected {other:?}"),
            Err(WsError::Timeout(_)) => {}
            Err(e) => panic!("the healthy reader was disconnected: {e}"),
        }
        if !all_sent && tasks.iter().all(|t| t.is_finished()) {
            for task in tasks.drain(..) {
                expected_for_carol.extend(task.await.expect("a sender does not panic"));
            }
            all_sent = true;
            println!("flood sent in {:?}", started.elapsed());
        }
        if slow_dropped_at.is_none() && open_connections(&app).await == 1 {
            slow_dropped_at = Some(started.elapsed());
            println!("the slow reader was dropped after {:?}", started.elapsed());
        }
        if all_sent && slow_dropped_at.is_some() && carol_got.len() >= expected_for_carol.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "after 60 s: flood sent {all_sent}, slow reader dropped {slow_dropped_at:?}, \
             carol got {} of {}",
            carol_got.len(),
            expected_for_carol.len()
        );
    }
    let mut got_ids: Vec<_> = carol_got.iter().map(|m| m.id).collect();
    let mut want_ids: Vec<_> = expected_for_carol.iter().map(|m| m.id).collect();
    got_ids.sort_unstable();
    want_ids.sort_unstable();
    assert_eq!(
        got_ids, want_ids,
        "carol received each of her messages once"
    );

    // The drop is counted as a slow consumer, closed with 1013 or dropped.
    let metrics = app.get("/metrics").await.body;
    assert!(
        metrics.contains("missive_websocket_slow_consumer_disconnects_total 1\n"),
        "{metrics}"
    );
    let closed = |code: &str| {
        let prefix = format!("missive_websocket_closed_total{{code=\"{code}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
    };
    assert_eq!(closed("1013") + closed("dropped"), 1, "{metrics}");

    // Bob finds what was buffered, then the end of the connection, then resumes.
    let (buffered, last, ending) = drain(slow).await;
    println!("the slow reader read {buffered} buffered frames, then {ending:?}",);
    assert!(
        buffered < FLOOD,
        "the slow reader cannot have received the whole flood on one connection"
    );
    if let WsError::Closed { code, .. } = &ending {
        assert!(
            [1008, 1013, 1006].contains(code),
            "a slow reader is closed with 1008 or 1013 (or the socket just ends), got {code}"
        );
    }
    let mut resumed = resume_as(&bob, &last).await;
    let mut rest = 0;
    while buffered + rest < FLOOD {
        resumed.next_message().await;
        rest += 1;
    }
    resumed.assert_silent().await;
}

/// Reads a connection until it ends: the frames read, the last cursor, and how it ended.
async fn drain(mut socket: Socket) -> (usize, String, WsError) {
    let mut count = 0;
    let mut last = socket.cursor.clone();
    loop {
        match socket.conn.next_frame(Duration::from_secs(15)).await {
            Ok(ServerFrame::Message { cursor, .. }) => {
                count += 1;
                last = cursor;
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e @ WsError::Timeout(_)) => {
                panic!("the slow reader's connection is still open after {count} frames: {e}")
            }
            Err(e) => return (count, last, e),
        }
    }
}
