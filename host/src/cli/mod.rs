//! `bay` subcommands other than `serve`.

pub mod keys;
pub mod plugin;
