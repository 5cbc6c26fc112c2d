//! Conformance suites: one per trait, run by every backend.
//!
//! Each suite is a list of `async fn scenario(backend)` checks plus a `run_all` that runs them
//! in order and panics with the scenario's name on the first failure. A backend's test module
//! builds the backend (fresh and empty) and calls `run_all`; behaviour that legitimately
//! differs between backends is a parameter of `run_all`, never a copied test.

pub mod connector;
pub mod extractor;
pub mod index;
pub mod queue;
pub mod store;
