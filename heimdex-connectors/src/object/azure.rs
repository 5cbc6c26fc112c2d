//! Azure Blob Storage: `az://container/prefix`.
//!
//! Configuration starts from the `AZURE_*` environment
//! ([`MicrosoftAzureBuilder::from_env`]: `AZURE_STORAGE_ACCOUNT_NAME`,
//! `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_TOKEN`, `AZURE_CLIENT_ID` /
//! `AZURE_CLIENT_SECRET` / `AZURE_TENANT_ID`, `AZURE_STORAGE_USE_EMULATOR`,
//! `AZURE_STORAGE_ENDPOINT`, …), then the source's options override it (see the
//! [options table](super#options); `account` is an alias of `account_name`).
//!
//! Azurite: either `use_emulator=true` (account `devstoreaccount1` and its well-known key at
//! `AZURITE_BLOB_STORAGE_URL`, default `http://127.0.0.1:10000`), or, for any address,
//! `account`, `access_key`, `endpoint=http://HOST:PORT/devstoreaccount1` and
//! `allow_http=true` (what the tests do). Azurite ignores the listing offset
//! (`startFrom`), so there each page lists from the start of the prefix and drops the keys
//! before the token: correct, but a large container on Azurite lists in quadratic time.
//!
//! ```
//! use heimdex_connectors::SourceSpec;
//! use heimdex_connectors::object::azure;
//! # fn main() -> Result<(), heimdex_connectors::SourceError> {
//! let spec = SourceSpec::parse("az://media/campaigns")?.with_options([
//!     ("account", "devstoreaccount1"),
//!     ("access_key", "a2V5"),
//!     ("endpoint", "http://127.0.0.1:10000/devstoreaccount1"),
//!     ("allow_http", "true"),
//! ]);
//! let connector = azure::build(&spec)?; // nothing is contacted yet
//! assert_eq!(connector.prefix(), "campaigns");
//! # Ok(()) }
//! ```

use std::sync::Arc;

use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};

use super::{ObjectStoreConnector, apply_options, build_error, retry_config};
use crate::source::{SourceError, SourceOptions, SourceSpec, kind};

/// Connector name of Azure sources.
pub const NAME: &str = "azure";

/// The builder for `container`: the environment, then `options`.
pub fn builder(
    container: &str,
    options: &SourceOptions,
) -> Result<MicrosoftAzureBuilder, SourceError> {
    let mut b = MicrosoftAzureBuilder::from_env().with_container_name(container);
    if let Some(retry) = retry_config(options)? {
        b = b.with_retry(retry);
    }
    apply_options(
        b,
        options,
        kind::AZURE,
        &["container", "container_name", "azure_container_name"],
        |key, value| {
            Ok(match key {
                "account" => Some(("account_name".to_owned(), value.to_owned())),
                "endpoint_url" => Some(("endpoint".to_owned(), value.to_owned())),
                _ => None,
            })
        },
        |b: MicrosoftAzureBuilder, k: AzureConfigKey, v| b.with_config(k, v),
    )
}

/// The connector of an `az://container/prefix` source.
pub fn build(spec: &SourceSpec) -> Result<ObjectStoreConnector, SourceError> {
    let store = builder(spec.authority(), spec.options())?
        .build()
        .map_err(|e| build_error(NAME, spec.uri(), e))?;
    Ok(ObjectStoreConnector::new(
        NAME,
        Arc::new(store),
        spec.path(),
        spec.uri(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_and_named() {
        let spec = SourceSpec::parse("az://c/p").unwrap().with_options([
            ("account", "acct"),
            ("access_key", "a2V5"),
            ("endpoint", "http://127.0.0.1:1/acct"),
            ("allow_http", "true"),
        ]);
        let b = builder("c", spec.options()).unwrap();
        assert_eq!(
            b.get_config_value(&AzureConfigKey::AccountName).as_deref(),
            Some("acct")
        );
        assert_eq!(build(&spec).unwrap().prefix(), "p");
        for key in ["region", "container_name", "service_account_path"] {
            let spec = SourceSpec::parse("az://c").unwrap().with_option(key, "x");
            match build(&spec) {
                Err(SourceError::InvalidOption { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        }
    }
}
