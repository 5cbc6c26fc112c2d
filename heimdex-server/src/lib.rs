//! # heimdex-server
//!
//! The reference stack: backends that need more than the core (SQLite store, persisted
//! in-process queue), the engine that wires Connector → Store → Queue → pipeline → Index,
//! and the `heimdex` command-line tool.

#[cfg(feature = "api")]
pub mod api;
pub mod engine;
pub mod queue;
pub mod stages;
pub mod store;
