//! Alice sends Bob a message over REST; Bob's live connection receives it.
//! Run a server (`cargo run --release`), then:
//! `cargo run -p missive-client --example chat [http://127.0.0.1:8080]`
use missive_client::live::{LiveConnection, LiveOptions};
use missive_client::protocol::{MessageStatus, SendMessageRequest, ServerFrame, StatusRequest};
use missive_client::ws::WsQuery;
use missive_client::{Client, ClientError};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or("http://127.0.0.1:8080".into());
    let client = Client::new(&base)?;

    // Two new users (fresh numbers, so the example runs more than once).
    let n = std::process::id() % 100_000;
    let (alice, bob) = (format!("+1555{n:05}01"), format!("+1555{n:05}02"));
    let alice_token = client.register(&alice, Some("Alice")).await?.body.token;
    let bob_token = client.register(&bob, Some("Bob")).await?.body.token;

    // Bob goes online: the connection reconnects and resumes by itself.
    let mut live =
        LiveConnection::connect(&base, WsQuery::token(&bob_token), LiveOptions::default()).await?;

    // Alice sends over REST; the 201 means the message is stored.
    let sent = client
        .with_token(&alice_token)
        .send_message(&SendMessageRequest {
            receiver: Some(bob.clone()),
            content: "Hello Bob!".into(),
            client_message_id: Some("hello-1".into()),
            ..SendMessageRequest::default()
        })
        .await
        .map_err(|e: ClientError| format!("send failed: {e}"))?
        .body;

    loop {
        match live.next().await? {
            ServerFrame::Message { message, cursor } if message.id == sent.id => {
                println!(
                    "Bob got {:?} from {} (cursor {cursor})",
                    message.content, message.sender
                );
                // Tell Alice it was read.
                client
                    .with_token(&bob_token)
                    .mark_status(
                        message.chat_id,
                        &StatusRequest {
                            message_id: message.id,
                            status: MessageStatus::Read,
                        },
                    )
                    .await?;
                break;
            }
            other => println!("frame: {other:?}"),
        }
    }
    live.close().await?;
    Ok(())
}
