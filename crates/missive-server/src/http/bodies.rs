//! Response bodies of the API that belong to the server rather than to the
//! wire protocol crate (health, the code-sent answer, an empty object).
//! The handlers and the OpenAPI document both take them from here.

use serde::Serialize;
use utoipa::ToSchema;

/// Body of `GET /healthz` and `GET /readyz`; informational only — the status
/// code is the answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    pub status: String,
    /// `/readyz` only: `ok` (the database answered).
    #[schema(required = false)]
    pub store: Option<String>,
    /// `/readyz` only: the fan-out across nodes — `local` without Redis,
    /// `ok`, or `down` (Redis unreachable; the node still serves).
    #[schema(required = false)]
    pub bus: Option<BusHealth>,
}

/// State of the fan-out across nodes, as `/readyz` reports it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BusHealth {
    /// One node, no Redis.
    Local,
    /// Redis connected.
    Ok,
    /// Redis unreachable; the node still serves.
    Down,
}

/// An empty JSON object, `{}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(max_properties = 0)]
pub struct Empty {}

/// Answer to `POST /sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CodeSent {
    /// Always `code_sent`.
    pub status: CodeSentStatus,
}

/// The one value of [`CodeSent::status`].
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CodeSentStatus {
    /// A code was issued.
    CodeSent,
}
