//! Logging: `LOG_LEVEL` (a level name or a tracing filter), `LOG_FORMAT`,
//! and [`LogLimiter`] for warnings that an outage would repeat.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Level names `LOG_LEVEL` accepts (any case), besides a full tracing filter.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// The filter of `LOG_LEVEL`. A single bare word must be a level name:
/// `EnvFilter` would read `WARNING` or `verbose` as the name of a module and
/// silently turn every other log line off.
fn filter(level: &str) -> anyhow::Result<EnvFilter> {
    let lowered = level.trim().to_ascii_lowercase();
    let bare_word = !lowered.contains(['=', ',', '[', ':']);
    if bare_word && !LEVELS.contains(&lowered.as_str()) {
        anyhow::bail!(
            "invalid LOG_LEVEL {level:?}: use DEBUG, INFO, WARN or ERROR (or TRACE, OFF), \
             or a tracing filter such as `info,missive_server=debug`"
        );
    }
    EnvFilter::try_new(&lowered).map_err(|e| anyhow::anyhow!("invalid LOG_LEVEL {level:?}: {e}"))
}

/// Installs the global subscriber. `level` is `DEBUG`, `INFO`, `WARN`,
/// `ERROR` (any case) or a full tracing filter such as `missive_server=debug`.
pub fn init(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = filter(level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

/// At most one warning per this long from one [`LogLimiter`].
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Lets one warning through per [`LOG_EVERY`] and counts the ones held back,
/// so that an outage (Redis, a push gateway) logs a line every few seconds,
/// not one per message.
#[derive(Debug, Default)]
pub struct LogLimiter {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// Calls `log` with the number of warnings held back since the last one,
    /// if a warning is due; otherwise counts this one as held back.
    pub fn warn(&self, log: impl FnOnce(u64)) {
        let due = match self.last.lock() {
            Ok(mut last) => {
                let due = last.is_none_or(|at| at.elapsed() >= LOG_EVERY);
                if due {
                    *last = Some(Instant::now());
                }
                due
            }
            Err(_) => false,
        };
        if due {
            log(self.suppressed.swap(0, Ordering::Relaxed));
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_limiter_counts_what_it_holds_back() {
        let limiter = LogLimiter::default();
        let mut logged = Vec::new();
        for _ in 0..5 {
            limiter.warn(|suppressed| logged.push(suppressed));
        }
        assert_eq!(logged, vec![0]);
        assert_eq!(limiter.suppressed.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn level_names_and_filters_are_accepted_in_any_case() {
        for ok in [
            "DEBUG",
            "info",
            "Warn",
            "ERROR",
            "info,missive_server=debug",
            "missive_server::http=trace",
        ] {
            assert!(filter(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn an_unknown_level_is_an_error_naming_the_accepted_values() {
        for bad in ["WARNING", "verbose", "loud"] {
            let error = filter(bad).expect_err(bad).to_string();
            assert!(error.contains("DEBUG, INFO, WARN or ERROR"), "{error}");
        }
    }
}
