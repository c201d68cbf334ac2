//! Users, tokens and chats for a scenario, made through the typed client
//! before anything is measured.

use std::time::Duration;

use anyhow::Context;
use futures_util::{StreamExt, stream};
use missive_client::Client;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

/// Registrations in flight at once.
const REGISTER_CONCURRENCY: usize = 32;

/// A registered user.
#[derive(Debug, Clone)]
pub struct BenchUser {
    /// The phone number.
    pub phone: String,
    /// Its bearer token.
    pub token: String,
}

/// A unique phone number: `+<role digit><10 digits of index>`.
pub fn phone(role: u8, index: usize) -> String {
    format!("+{role}{index:010}")
}

/// A typed client of the server at `base`.
pub fn client(base: &str) -> anyhow::Result<Client> {
    Ok(Client::new(base)?)
}

/// Registers `count` users whose phone numbers start with `role`, `REGISTER_CONCURRENCY` at a time.
pub async fn register_users(
    client: &Client,
    role: u8,
    count: usize,
) -> anyhow::Result<Vec<BenchUser>> {
    let mut users: Vec<(usize, BenchUser)> = stream::iter(0..count)
        .map(|index| {
            let client = client.clone();
            async move {
                let phone = phone(role, index);
                let registered = client
                    .register(&phone, None)
                    .await
                    .with_context(|| format!("registering {phone}"))?;
                anyhow::Ok((
                    index,
                    BenchUser {
                        phone,
                        token: registered.body.token,
                    },
                ))
            }
        })
        .buffer_unordered(REGISTER_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    users.sort_by_key(|(index, _)| *index);
    Ok(users.into_iter().map(|(_, user)| user).collect())
}

/// Creates the 1:1 chat of `a` and `b` (as `a`) and returns its id.
pub async fn create_chat(client: &Client, a: &BenchUser, b: &BenchUser) -> anyhow::Result<Uuid> {
    let chat = client
        .with_token(a.token.clone())
        .create_chat([a.phone.as_str(), b.phone.as_str()])
        .await
        .with_context(|| format!("creating the chat of {} and {}", a.phone, b.phone))?;
    Ok(chat.body.id)
}

/// An open WebSocket to the server.
pub type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `GET /ws?token=…` with `config` and waits (at most `timeout`) for the `ready` frame.
pub async fn connect_ws(
    base: &str,
    token: &str,
    config: Option<WebSocketConfig>,
    timeout: Duration,
) -> anyhow::Result<Socket> {
    use missive_client::ws::{WsQuery, ws_url};
    use tokio_tungstenite::tungstenite::Message;

    let url = ws_url(base, &WsQuery::token(token))?;
    let open = async {
        let (mut socket, _) =
            tokio_tungstenite::connect_async_with_config(url.as_str(), config, true).await?;
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text)))
                    if text.as_str().starts_with(r#"{"type":"ready""#) =>
                {
                    return anyhow::Ok(socket);
                }
                Some(Ok(Message::Text(text))) => {
                    // Any other first frame: decode it to be sure it is not `ready`.
                    let frame: missive_protocol::ServerFrame = serde_json::from_str(text.as_str())
                        .with_context(|| format!("undecodable frame {text}"))?;
                    if matches!(frame, missive_protocol::ServerFrame::Ready { .. }) {
                        return Ok(socket);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("the connection closed before the ready frame"),
            }
        }
    };
    tokio::time::timeout(timeout, open)
        .await
        .context("timed out waiting for the ready frame")?
}
