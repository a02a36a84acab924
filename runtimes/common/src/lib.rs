//! What Ship (`runtimes/ship`) and Gull (`runtimes/gull`) share: the PID-1
//! supervisor, the request log and signal wait, the FastAPI-shaped error
//! type, the per-session token check, process-group output capture, text
//! helpers, built-in skills, the runtime limits, and race-free workspace
//! paths.

pub mod beneath;
pub mod capture;
pub mod error;
pub mod limits;
pub mod pid1;
pub mod server;
pub mod skills;
pub mod text;
pub mod token;
