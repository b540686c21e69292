//! Where the dashboard's data comes from.

pub mod demo;
