//! The caller's sessions: every live token of the user (not revoked, used
//! within `TOKEN_TTL`), listed without the tokens themselves, and revoked
//! by session id. A revocation reaches the token's WebSockets on every node
//! through the bus (`TokenRevoked`), as a logout does.

use std::sync::Arc;
use std::time::Instant;

use missive_protocol::SessionInfo;
use uuid::Uuid;

use super::{Caller, Error, ErrorCode, Service};
use crate::bus::{BusHealth, Envelope, Payload};
use crate::domain::format_ms;
use crate::security::tokens::TOKEN_CACHE_TTL;

fn session_not_found() -> Error {
    Error::new(
        ErrorCode::NotFound,
        "no such session: it is not one of your live sessions",
    )
}

impl Service {
    /// The caller's live sessions, most recently used first; `current` marks
    /// the one of the token making the call. Needs a token.
    pub async fn list_sessions(&self, caller: &Caller) -> Result<Vec<SessionInfo>, Error> {
        self.check_auth_rate(caller).await?;
        let me = self
            .token_session(caller)
            .await?
            .ok_or_else(|| Error::unauthorized("a bearer token is required"))?;
        let records = self
            .store
            .list_sessions(me.user.id, self.live_since())
            .await?;
        Ok(records
            .into_iter()
            .map(|r| SessionInfo {
                id: r.id,
                created_at: format_ms(r.created_at),
                last_used_at: format_ms(r.last_used_at),
                user_agent: r.user_agent,
                current: r.id == me.id,
            })
            .collect())
    }

    /// Revokes one of the caller's live sessions; its connections on every
    /// node close. `not_found` when `id` is not a live session of the
    /// caller's (another user's session included: its existence is not
    /// revealed). Needs a token.
    pub async fn revoke_session(&self, caller: &Caller, id: Uuid) -> Result<(), Error> {
        self.check_auth_rate(caller).await?;
        let me = self.require_token(caller).await?;
        let hash = self
            .store
            .revoke_session(me.id, id, self.live_since())
            .await?
            .ok_or_else(session_not_found)?;
        self.revoked(me.id, hash, Instant::now()).await;
        Ok(())
    }

    /// After a token of `user` was revoked in the store (the commit ended
    /// at `committed`): forgets it here at once and tells every node, whose
    /// connections opened with it close. In a cluster, returns only once
    /// every other node's cached lookup of the token has expired
    /// ([`TOKEN_CACHE_TTL`] after the commit), so that no node accepts the
    /// token once the revoking request is answered, whether or not the bus
    /// delivered the revocation.
    pub(super) async fn revoked(&self, user: Uuid, token_hash: String, committed: Instant) {
        self.tokens.remove(&token_hash);
        self.bus
            .publish(Envelope {
                targets: vec![(user, None)],
                payload: Arc::new(Payload::TokenRevoked { token_hash }),
            })
            .await;
        if self.bus.health() != BusHealth::Local {
            tokio::time::sleep_until((committed + TOKEN_CACHE_TTL).into()).await;
        }
    }
}
