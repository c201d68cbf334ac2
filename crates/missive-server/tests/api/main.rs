//! Integration tests of the REST API (API.md §4), each against its own server
//! on port 0 with its own SQLite file, driven through `missive-client`.

mod auth_modes;
mod chats;
mod durability;
mod errors;
mod health;
mod helpers;
mod messages;
mod pagination;
mod rate_limits;
mod register;
mod status;
mod typing;
mod users;
