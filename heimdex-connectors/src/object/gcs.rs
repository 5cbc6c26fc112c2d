//! Google Cloud Storage: `gs://bucket/prefix`.
//!
//! Configuration starts from the `GOOGLE_*` environment
//! ([`GoogleCloudStorageBuilder::from_env`]: `GOOGLE_APPLICATION_CREDENTIALS`,
//! `GOOGLE_SERVICE_ACCOUNT` / `GOOGLE_SERVICE_ACCOUNT_PATH`, `GOOGLE_SERVICE_ACCOUNT_KEY`,
//! `GOOGLE_BASE_URL`, …), then the source's options override it (see the
//! [options table](super#options); `endpoint` is an alias of object_store's `base_url`).
//! Without credentials object_store falls back to application default credentials and the
//! metadata server, as Google's SDKs do.
//!
//! object_store talks to GCS through its XML API (the S3-like one: `list-type=2` listings,
//! ranged `GET`s with `If-Match`).
//!
//! ```
//! use heimdex_connectors::SourceSpec;
//! use heimdex_connectors::object::gcs;
//! # fn main() -> Result<(), heimdex_connectors::SourceError> {
//! let spec = SourceSpec::parse("gs://media/campaigns")?.with_options([
//!     ("endpoint", "http://127.0.0.1:4443"),
//!     ("skip_signature", "true"),
//! ]);
//! let connector = gcs::build(&spec)?; // nothing is contacted yet
//! assert_eq!(connector.prefix(), "campaigns");
//! # Ok(()) }
//! ```

use std::sync::Arc;

use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};

use super::{ObjectStoreConnector, apply_options, build_error, retry_config};
use crate::source::{SourceError, SourceOptions, SourceSpec, kind};

/// Connector name of GCS sources.
pub const NAME: &str = "gcs";

/// The builder for `bucket`: the environment, then `options`.
pub fn builder(
    bucket: &str,
    options: &SourceOptions,
) -> Result<GoogleCloudStorageBuilder, SourceError> {
    let mut b = GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket);
    if let Some(retry) = retry_config(options)? {
        b = b.with_retry(retry);
    }
    apply_options(
        b,
        options,
        kind::GCS,
        &[
            "bucket",
            "bucket_name",
            "google_bucket",
            "google_bucket_name",
        ],
        |key, value| {
            Ok(match key {
                "endpoint" | "endpoint_url" => Some(("base_url".to_owned(), value.to_owned())),
                _ => None,
            })
        },
        |b: GoogleCloudStorageBuilder, k: GoogleConfigKey, v| b.with_config(k, v),
    )
}

/// The connector of a `gs://bucket/prefix` source.
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
        let spec = SourceSpec::parse("gs://b/p/q").unwrap().with_options([
            ("endpoint", "http://127.0.0.1:1"),
            ("skip_signature", "true"),
        ]);
        let b = builder("b", spec.options()).unwrap();
        assert_eq!(
            b.get_config_value(&GoogleConfigKey::BaseUrl).as_deref(),
            Some("http://127.0.0.1:1")
        );
        assert_eq!(build(&spec).unwrap().prefix(), "p/q");
        let spec = SourceSpec::parse("gs://b")
            .unwrap()
            .with_options([("service_account_path", "/nonexistent/sa.json")]);
        assert!(builder("b", spec.options()).is_ok());
        for key in ["access_key_id", "bucket", "region"] {
            let spec = SourceSpec::parse("gs://b").unwrap().with_option(key, "x");
            match build(&spec) {
                Err(SourceError::InvalidOption { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        }
    }
}
