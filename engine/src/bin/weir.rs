//! The `weir` command as cargo builds it (pure SQL): see [`weir_engine::cli`].

use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Warnings of the engine and the exporters (a cardinality limit reached, an exporter that
    // cannot reach its collector); `WEIR_LOG=info` (or `debug`, per module) shows more.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    ExitCode::from(weir_engine::cli::main(
        std::env::args().skip(1).collect(),
        Vec::new(),
        None,
    ))
}
