//! Conformance suites: one per trait, run by every backend.
//!
//! Each suite is a list of `async fn scenario(backend)` checks (tantivy / object_store style).
//! A backend's test file runs them through the suite's macro, which expands to one
//! `#[tokio::test]` per scenario, so a failure names both the backend (the module the macro is
//! invoked in) and the scenario:
//!
//! ```ignore
//! async fn file_store() -> heimdex_core::conformance::Fixture<SqliteStore> {
//!     let dir = tempfile::tempdir().expect("tempdir");
//!     let store = SqliteStore::open(&dir.path().join("heimdex.db")).await.expect("open");
//!     Fixture::new(store).keep(dir)
//! }
//! mod sqlite_file {
//!     use super::*;
//!     heimdex_core::store_conformance_tests!(file_store);
//! }
//! // nextest lists `sqlite_file::sources`, `sqlite_file::job_state_machine`, ...
//! ```
//!
//! The macro calls the factory once per scenario. Attributes after the factory go on every
//! generated test: `index_conformance_tests!(make_qdrant, #[ignore = "needs a Qdrant
//! server"])`. Scenarios never assume the backend is
//! empty: each works in its own random tenant, so a suite can run against a database or
//! server that already holds other data. Where a backend cannot scope by tenant (a queue
//! hands out any tenant's message), the factory gives each scenario a queue of its own (a
//! fresh namespace, or a fresh local file). Behaviour that legitimately differs between
//! backends is a separate macro arm or a parameter, never a copied test.
//!
//! Adding a scenario: write the `pub async fn`, then add its name to the suite's list macro
//! (`__store_scenarios!`, `__queue_scenarios!`, `__index_scenarios!`,
//! `__connector_scenarios!`): one line.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

pub mod connector;
pub mod extractor;
pub mod index;
pub mod queue;
pub mod store;

/// Opens the backend again on the same durable state, as a restarted process would.
pub type Reopen<B> = dyn Fn() -> Pin<Box<dyn Future<Output = B> + Send>> + Send + Sync;

/// What a backend's factory hands to a scenario: the backend, anything that must outlive it
/// (a temporary directory, a server collection guard), and optionally a way to reopen it.
///
/// Fields drop in order: the backend first, then the kept values, so a temporary directory
/// outlives the database file opened in it.
pub struct Fixture<B> {
    backend: B,
    reopen: Option<Box<Reopen<B>>>,
    keep: Vec<Box<dyn Any + Send + Sync>>,
}

impl<B: std::fmt::Debug> std::fmt::Debug for Fixture<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("backend", &self.backend)
            .field("reopen", &self.reopen.is_some())
            .field("kept", &self.keep.len())
            .finish()
    }
}

impl<B> Fixture<B> {
    /// A fixture holding just `backend`.
    pub fn new(backend: B) -> Self {
        Self {
            backend,
            reopen: None,
            keep: Vec::new(),
        }
    }

    /// Keep `value` alive as long as the backend (for example a `tempfile::TempDir`).
    #[must_use]
    pub fn keep(mut self, value: impl Any + Send + Sync) -> Self {
        self.keep.push(Box::new(value));
        self
    }

    /// A function that opens the backend again on the same durable state (used by the
    /// durability scenarios).
    #[must_use]
    pub fn reopen_with<F>(mut self, reopen: impl Fn() -> F + Send + Sync + 'static) -> Self
    where
        F: Future<Output = B> + Send + 'static,
    {
        self.reopen = Some(Box::new(move || Box::pin(reopen())));
        self
    }

    /// The backend under test.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Open the backend again on the same durable state. Panics when the factory gave no
    /// reopen function: a suite only asks for it in its durable variant.
    pub async fn reopen(&self) -> B {
        match &self.reopen {
            Some(reopen) => reopen().await,
            None => panic!("this fixture has no reopen function (Fixture::reopen_with)"),
        }
    }
}

/// A tenant of its own for one scenario run: `<prefix>-<scenario>-<random>`, so runs on a
/// shared server neither see nor disturb each other or other data.
pub(crate) fn unique_tenant(prefix: &str, scenario: &str) -> crate::model::TenantId {
    crate::model::TenantId::new(format!(
        "{prefix}-{scenario}-{}",
        uuid::Uuid::new_v4().simple()
    ))
}

/// Expands a suite's scenario list: `tests` makes one `#[tokio::test]` per scenario calling
/// the factory, with the extra attributes given in brackets (e.g. `#[ignore = "..."]`); `run`
/// awaits each scenario on one backend in order. Used by the suites' public macros; not part
/// of the API.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_expand {
    (tests $suite:ident, $make:expr, $attrs:tt; $($scenario:ident),+ $(,)?) => {$(
        $crate::__conformance_expand! { @one $suite, $make, $attrs, $scenario }
    )+};
    (@one $suite:ident, $make:expr, [$(#[$meta:meta])*], $scenario:ident) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$meta])*
        async fn $scenario() {
            let fixture = ($make)().await;
            $crate::conformance::$suite::$scenario(fixture.backend()).await;
        }
    };
    (run $suite:ident, $backend:expr, $attrs:tt; $($scenario:ident),+ $(,)?) => {$(
        $crate::conformance::$suite::$scenario($backend).await;
    )+};
}
