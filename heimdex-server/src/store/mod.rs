//! [`Store`](heimdex_core::Store) backends of the server crate.
//!
//! - [`sqlite`]: the embedded default, one SQLite file ([`SqliteStore`]).
//! - [`postgres`]: the server store, Postgres with row-level security per tenant
//!   ([`PostgresStore`]).
//! - `rows`: the row <-> model conversions both share.

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "embedded", feature = "postgres"))]
mod rows;
#[cfg(feature = "embedded")]
pub mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::{PostgresConfig, PostgresStore};
#[cfg(feature = "embedded")]
pub use sqlite::SqliteStore;
