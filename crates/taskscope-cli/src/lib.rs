//! The `taskscope` command's pieces, as a library so examples and tests drive the real code:
//! the dashboard state ([`app`]), its drawing ([`view`]), data sources ([`source`]), the terminal
//! loop ([`tui`]), screenshots ([`screenshot`]), task dumps of a running app ([`dump`]) and the
//! command line ([`cli`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod app;
pub mod cli;
pub mod dump;
pub mod dump_groups;
pub mod screenshot;
pub mod source;
pub mod task_tree;
pub mod tui;
pub mod view;
pub mod warning_rows;
