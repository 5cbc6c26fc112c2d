//! Amazon S3 and S3-compatible stores (MinIO, Ceph, R2, moto): `s3://bucket/prefix`.
//!
//! Configuration starts from the `AWS_*` environment ([`AmazonS3Builder::from_env`]:
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, web identity and container
//! credentials, …), then the source's options override it (see the
//! [options table](super#options)). Without credentials object_store falls back to the
//! instance metadata service, as the AWS SDKs do.
//!
//! ```
//! use heimdex_connectors::SourceSpec;
//! use heimdex_connectors::object::s3;
//! # fn main() -> Result<(), heimdex_connectors::SourceError> {
//! let spec = SourceSpec::parse("s3://media/campaigns")?.with_options([
//!     ("endpoint", "http://127.0.0.1:9000"),
//!     ("allow_http", "true"),
//!     ("region", "us-east-1"),
//!     ("access_key_id", "minio"),
//!     ("secret_access_key", "minio123"),
//! ]);
//! let connector = s3::build(&spec)?; // nothing is contacted yet
//! assert_eq!(connector.prefix(), "campaigns");
//! # Ok(()) }
//! ```

use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};

use super::{ObjectStoreConnector, apply_options, build_error, parse_bool, retry_config};
use crate::source::{SourceError, SourceOptions, SourceSpec, kind};

/// Connector name of S3 sources.
pub const NAME: &str = "s3";

/// The builder for `bucket`: the environment, then `options`. Tests and applications may
/// adjust it (e.g. [`AmazonS3Builder::with_http_connector`]) before building.
pub fn builder(bucket: &str, options: &SourceOptions) -> Result<AmazonS3Builder, SourceError> {
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(retry) = retry_config(options)? {
        b = b.with_retry(retry);
    }
    apply_options(
        b,
        options,
        kind::S3,
        &["bucket", "bucket_name", "aws_bucket", "aws_bucket_name"],
        |key, value| {
            Ok(match key {
                // Path style is what S3-compatible servers expect; it is the default unless
                // AWS_VIRTUAL_HOSTED_STYLE_REQUEST says otherwise.
                "path_style" | "force_path_style" => Some((
                    "virtual_hosted_style_request".to_owned(),
                    (!parse_bool(key, value)?).to_string(),
                )),
                _ => None,
            })
        },
        |b: AmazonS3Builder, k: AmazonS3ConfigKey, v| b.with_config(k, v),
    )
}

/// The connector of an `s3://bucket/prefix` source.
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
        let ok = SourceSpec::parse("s3://b/p").unwrap().with_options([
            ("Endpoint", "http://127.0.0.1:1"),
            ("allow_http", "true"),
            ("path_style", "true"),
            ("region", "eu-west-1"),
            ("access_key_id", "a"),
            ("secret_access_key", "hunter2"),
            ("aws_session_token", "tok3n"),
        ]);
        let b = builder("b", ok.options()).unwrap();
        assert_eq!(
            b.get_config_value(&AmazonS3ConfigKey::VirtualHostedStyleRequest)
                .as_deref(),
            Some("false")
        );
        assert_eq!(
            b.get_config_value(&AmazonS3ConfigKey::Endpoint).as_deref(),
            Some("http://127.0.0.1:1")
        );
        let c = build(&ok).unwrap();
        assert_eq!(c.prefix(), "p");
        let debug = format!("{c:?}");
        assert!(
            debug.contains("AmazonS3(b)") && debug.contains("s3://b/p"),
            "{debug}"
        );
        assert!(
            !debug.contains("hunter2") && !debug.contains("tok3n"),
            "{debug}"
        );

        for (key, value) in [
            ("colour", "red"),
            ("bucket", "other"),
            ("path_style", "maybe"),
        ] {
            let spec = SourceSpec::parse("s3://b").unwrap().with_option(key, value);
            match build(&spec) {
                Err(SourceError::InvalidOption { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        }
    }
}
