//! The `taskscope` command.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    match taskscope_cli::cli::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("taskscope: {e:#}");
            ExitCode::FAILURE
        }
    }
}
