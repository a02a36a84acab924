//! `bay` subcommands other than `serve`.

pub mod import;
pub mod keys;
pub mod plugin;
