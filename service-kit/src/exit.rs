//! How a service's `main` ends, the same for every service: settings it cannot load are a usage error (exit status
//! 2, the message on stderr, since logging is not set up yet), and a run that fails is logged (exit status 1).

use std::process::ExitCode;

/// The settings, or the exit status 2 after saying on stderr why they could not be loaded.
pub fn settings_or_usage_error<T>(service: &str, loaded: anyhow::Result<T>) -> Result<T, ExitCode> {
    loaded.map_err(|err| {
        eprintln!("{service}: {err:#}");
        ExitCode::from(2)
    })
}

/// Success, or the error logged and exit status 1.
pub fn exit_code(service: &str, run: anyhow::Result<()>) -> ExitCode {
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{service} failed: {err:#}");
            ExitCode::FAILURE
        }
    }
}
