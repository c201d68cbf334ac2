//! Logging: `LOG_LEVEL` (a level name or a tracing filter) and `LOG_FORMAT`.

use std::io::IsTerminal;

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

#[cfg(test)]
mod tests {
    use super::*;

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
