//! Logging: `LOG_LEVEL` (a level name or a tracing filter) and `LOG_FORMAT`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `level` is `DEBUG`, `INFO`, `WARN`,
/// `ERROR` (any case) or a full tracing filter such as `missive_server=debug`.
pub fn init(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level.to_ascii_lowercase())
        .map_err(|e| anyhow::anyhow!("invalid LOG_LEVEL {level:?}: {e}"))?;
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
