//! The `taskscope` command.

use std::process::ExitCode;

mod app;
mod cli;
mod source;
mod tui;
mod view;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("taskscope: {e:#}");
            ExitCode::FAILURE
        }
    }
}
