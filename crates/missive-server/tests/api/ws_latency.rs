//! Latency of the WebSocket round trip: an `ack` must not wait for the TCP
//! delayed-ACK timer (40 ms on Linux) behind the sender's own `message` frame.

use std::time::{Duration, Instant};

use crate::helpers::{ALICE, BOB, spawn_app};
use crate::ws_helpers::{Target, open_as};

/// Sequential sends measured.
const SENDS: usize = 31;
/// A loopback round trip that commits takes a few ms even in a debug build;
/// a send stuck behind the delayed-ACK timer takes 40 ms or more. The
/// median is compared, so that a few sends slowed by a busy machine (other
/// builds, a PostgreSQL checkpoint) do not decide, while a Nagle delay,
/// which hits every send, does.
const BUDGET: Duration = Duration::from_millis(30);

#[tokio::test]
async fn a_ws_send_is_acknowledged_without_a_nagle_delay() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let mut socket = open_as(&alice).await;
    // Warm up (the first send creates the chat).
    socket.send_message("warm", Target::Phone(BOB), "hi").await;

    let mut round_trips = Vec::with_capacity(SENDS);
    for i in 0..SENDS {
        let started = Instant::now();
        socket
            .send_message(&format!("r{i}"), Target::Phone(BOB), "ping-pong")
            .await;
        round_trips.push(started.elapsed());
    }
    round_trips.sort();
    let median = round_trips[SENDS / 2];

    assert!(
        median < BUDGET,
        "a WebSocket send takes {median:?} (median) from frame to ack on loopback (budget {BUDGET:?}); all: {round_trips:?}"
    );
}
