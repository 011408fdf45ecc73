//! Where the origin's logs go and how they look: JSON lines for a log
//! pipeline (containers, production), readable lines on a terminal.

use std::io::IsTerminal;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON unless stderr is a terminal.
    Auto,
    /// One JSON object per line, with the request's span (request id, route).
    Json,
    /// Human-readable lines.
    Pretty,
}

/// What is logged unless `RUST_LOG` says otherwise: our info, others' warnings
/// (Chromium's CDP chatter, the AWS SDK and warp are noisy at info).
const DEFAULT_FILTER: &str = "info,chromiumoxide=warn,aws=warn,warp=warn";
/// warp's own request tracing is off whatever `RUST_LOG` says: the origin
/// logs each answer itself, and warp's calls a shed 503 an "internal error".
const ALWAYS: &str = "warp::filters::trace=off";

pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| DEFAULT_FILTER.into())
        .add_directive(ALWAYS.parse().expect("a valid directive"));
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Auto if !terminal => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Auto | LogFormat::Pretty => builder.with_ansi(terminal).init(),
    }
}
