//! Security building blocks: tokens and their cache, one-time login codes and
//! the code senders, rate limits, caps per user or address, and the clock
//! they read.

pub mod caps;
pub mod clock;
pub mod codes;
pub mod rate_limit;
pub mod tokens;

pub use clock::{Clock, ManualClock, SystemClock};
pub use codes::{CodeSender, LogCodeSender, WebhookCodeSender};
pub use rate_limit::RateLimits;
pub use tokens::TokenCache;
