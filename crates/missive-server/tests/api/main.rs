//! Integration tests of the REST API (API.md §4), each against its own server
//! on port 0 with its own SQLite file, driven through `missive-client`.

mod auth_helpers;
mod auth_matrix;
mod auth_modes;
mod chats;
mod cluster;
mod connections;
mod durability;
mod errors;
mod health;
mod helpers;
mod login;
mod messages;
mod pagination;
mod rate_limit_recovery;
mod rate_limits;
mod register;
mod revocation;
mod status;
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
mod ws_typing;
