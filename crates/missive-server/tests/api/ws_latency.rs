//! Latency of the WebSocket round trip: an `ack` must not wait for the TCP
//! delayed-ACK timer (40 ms on Linux) behind the sender's own `message` frame.

use std::time::{Duration, Instant};

use crate::helpers::{ALICE, BOB, spawn_app};
use crate::ws_helpers::{Target, open_as};

/// Sequential sends measured.
const SENDS: u32 = 30;
/// A loopback round trip that commits to SQLite takes a few ms even in a debug build.
const BUDGET: Duration = Duration::from_millis(20);

#[tokio::test]
async fn a_ws_send_is_acknowledged_without_a_nagle_delay() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let mut socket = open_as(&alice).await;
    // Warm up (the first send creates the chat).
    socket.send_message("warm", Target::Phone(BOB), "hi").await;

    let started = Instant::now();
    for i in 0..SENDS {
        socket
            .send_message(&format!("r{i}"), Target::Phone(BOB), "ping-pong")
            .await;
    }
    let average = started.elapsed() / SENDS;

    assert!(
        average < BUDGET,
        "a WebSocket send takes {average:?} from frame to ack on loopback (budget {BUDGET:?})"
    );
}
