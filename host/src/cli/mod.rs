//! `bay` subcommands other than `serve`.

pub mod plugin;
