//! The `taskscope` command.

use std::process::ExitCode;

mod cli;
mod source;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("taskscope: {e:#}");
            ExitCode::FAILURE
        }
    }
}
