//! Bay's driver contract, shaped after sessions, and one implementation of it.
//!
//! A *session* is the compute of one sandbox: one or more runtime containers
//! that share the sandbox's cargo volume and reach each other by name. A
//! driver launches, inspects, lists and destroys whole sessions, and manages
//! the cargo volumes; how an engine spells that (containers and a network on
//! Docker, one Pod on Kubernetes) is the driver's business.
//!
//! - [`spec`]: the data types of the contract, shared by the host's drivers
//!   (`host/src/driver/`) and by driver-extension plugins.
//! - [`docker_api`]: the contract over the Docker Engine REST API (Docker,
//!   Podman's API service), written against a [`docker_api::Transport`] so
//!   the same code runs natively in the host's built-in Docker driver
//!   (reqwest) and inside the `docker-api-driver` WebAssembly plugin (the
//!   host's `http` import).

pub mod docker_api;
pub mod spec;
