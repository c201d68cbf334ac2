//! missive: a real-time messaging backend.
//!
//! # Layout
//!
//! Layers point one way: transports ([`http`], [`gateway`]) → [`service`] →
//! [`store`] / [`bus`] → [`domain`] → [`config`] → [`redaction`]. A test
//! (`layering.rs`, in `make test`) reads every `crate::…` path and fails
//! when a module imports one of a higher layer, or when files of `http/` or
//! `store/sqlite/` import each other in a circle; the few imports that still
//! point up are listed there, each with the change that removes it.
//!
//! - [`config`]: the typed configuration (environment and flags) and the
//!   defaults it shows; it imports nothing of the server but [`redaction`].
//! - [`redaction`]: secrets kept out of logs (URL passwords).
//! - [`startup`]: builds the [`Application`] from a config and a listener.
//! - [`domain`]: validated newtypes (phone numbers, message content).
//! - [`store`]: the [`store::Store`] boundary and its SQLite implementation
//!   (single writer thread with group commit; a pool of readers).
//! - [`gateway`]: the WebSocket sessions, one per connection, started by
//!   `http::ws` (the `/ws` upgrade) with a narrow [`gateway::Context`].
//! - [`bus`]: fan-out of committed events to every connection of a user, and
//!   the node's registry of connections.
//! - [`service`]: every use case (identity, accounts and login, chats,
//!   messages) and the one error vocabulary, shared by HTTP and WebSocket.
//! - [`maintenance`]: periodic pruning (expired and revoked tokens, expired
//!   login codes), on every node.
//! - [`serve`]: the accept loop: connection cap, header and idle timeouts.
//! - [`http`]: the REST API, one module per resource, and its error mapping.
//! - [`push`]: push notifications for offline recipients: the outbox
//!   dispatcher and the cluster-wide presence it checks.
//! - [`security`]: tokens, login codes and their senders, rate limits.
//! - [`maintenance`]: periodic pruning jobs every node runs.
//! - [`admin`]: the operator's subcommands (`backup`, `restore`, `migrate`).
//! - [`telemetry`]: logging setup.
//! - [`metrics`]: the instruments of `/metrics` (atomic handles used by every
//!   layer) and their per-server exporter, which reads the bus and the
//!   connection registry when `/metrics` is scraped.

pub mod admin;
pub mod bus;
pub mod config;
pub mod domain;
pub mod gateway;
pub mod http;
#[cfg(test)]
mod layering;
pub mod maintenance;
pub mod metrics;
pub mod push;
pub mod redaction;
pub mod security;
pub mod serve;
pub mod service;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;

pub use config::{AuthMode, Config, LogFormat};
pub use startup::{Application, shutdown_signal};
