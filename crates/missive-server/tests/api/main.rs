//! Integration tests of the REST API, each against its own server
//! on port 0 with its own database, driven through `missive-client`; the
//! store is SQLite or PostgreSQL (`MISSIVE_TEST_STORE`, see `test_db`).
//! `store_contract` checks the `Store` trait directly on both.

mod asyncapi;
mod auth_helpers;
mod auth_matrix;
mod auth_modes;
mod backup;
mod chats;
mod cli_errors;
mod client_live;
mod cluster;
mod connection_caps;
mod connections;
mod cors;
mod disk_full;
mod dns_rebinding;
mod durability;
mod errors;
mod health;
mod helpers;
mod login;
mod login_limits;
mod messages;
mod metrics;
mod migrations;
mod openapi;
mod pagination;
mod pg_outage;
mod pg_stall;
mod proxies;
mod push;
mod rate_limit_recovery;
mod rate_limits;
mod register;
mod retention;
mod revocation;
mod sdk;
mod sessions;
mod startup;
mod status;
mod store_contract;
mod test_db;
mod typing;
mod users;
mod ws_frames;
mod ws_helpers;
mod ws_latency;
mod ws_loss;
mod ws_memory;
mod ws_push;
mod ws_receipts;
mod ws_resume;
mod ws_slow;
mod ws_token_ttl;
mod ws_typing;
