//! An open WebSocket keeps its token alive (README, "Sessions") whatever
//! `TOKEN_TTL` is: the connection records a use every `TOKEN_TTL`/4, on its
//! own schedule, even when that is shorter than the 20 s ping.

use std::time::Duration;

use crate::helpers::{ALICE, BOB, spawn_app_with};
use crate::ws_helpers::open_as;

#[tokio::test]
async fn a_socket_keeps_a_token_with_a_short_ttl_alive() {
    let ttl = Duration::from_secs(2);
    let app = spawn_app_with(move |config| config.token_ttl = ttl).await;
    let alice = app.user(ALICE).await;
    app.register(BOB).await;
    let mut socket = open_as(&alice).await;

    // The token is used by nothing but the open socket for 2.5 × TOKEN_TTL.
    tokio::time::sleep(ttl * 5 / 2).await;

    assert_eq!(
        alice
            .client
            .me()
            .await
            .expect("the token of an open socket stays valid")
            .status,
        200
    );
    // The socket itself is still served.
    let sent = alice.send_to(BOB, "still open").await;
    assert_eq!(socket.next_message().await.0.id, sent.id);
}
