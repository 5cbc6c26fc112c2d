//! [`Store`](heimdex_core::Store) backends of the server crate.
//!
//! - [`sqlite`]: the embedded default, one SQLite file ([`SqliteStore`]).
//! - [`postgres`]: the server store, Postgres with row-level security per tenant
//!   ([`PostgresStore`]).

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "embedded")]
pub mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::{PostgresConfig, PostgresStore};
#[cfg(feature = "embedded")]
pub use sqlite::SqliteStore;
