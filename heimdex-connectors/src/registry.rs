//! The connector factory: a [`SourceSpec`]'s kind selects a registered factory, which builds
//! the [`Connector`] from the spec's URI parts and options.
//!
//! The engine holds one [`ConnectorRegistry`] and never names a backend: a new kind of
//! storage plugs in by registering a factory for its kind (for schemes this crate does not
//! know, the kind is the scheme, see [`crate::source`]).
//!
//! ```
//! use std::sync::Arc;
//! use heimdex_connectors::{ConnectorRegistry, SourceError, SourceSpec, LocalConnector};
//!
//! # fn main() -> Result<(), SourceError> {
//! // A "mirror://" scheme served by a local folder, added next to the defaults.
//! let registry = ConnectorRegistry::default().with("mirror", |spec: &SourceSpec| {
//!     let root = spec.options().require("root")?;
//!     Ok(Arc::new(LocalConnector::new(root)?))
//! });
//! let tmp = std::env::temp_dir();
//! let spec = SourceSpec::parse("mirror://archive/2024")?
//!     .with_option("root", tmp.to_str().unwrap());
//! let connector = registry.build(&spec)?;
//! assert_eq!(connector.name(), "local");
//!
//! // Kinds nobody registered are a typed error naming the scheme and the supported ones.
//! let err = registry.build(&SourceSpec::parse("ftp://host/x")?).err().unwrap();
//! assert!(matches!(err, SourceError::UnsupportedScheme { ref scheme, .. } if scheme == "ftp"));
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use heimdex_core::Connector;

use crate::source::{SourceError, SourceSpec, kind};

/// Builds a connector for a source of one kind.
pub type ConnectorFactory =
    Arc<dyn Fn(&SourceSpec) -> Result<Arc<dyn Connector>, SourceError> + Send + Sync>;

/// Source kind → connector factory. [`new`](Self::new) (and [`Default`]) knows the backends
/// compiled into this crate (`local` and `local-file` with feature `local`);
/// [`empty`](Self::empty) knows none.
#[derive(Clone)]
pub struct ConnectorRegistry {
    factories: BTreeMap<String, ConnectorFactory>,
}

impl std::fmt::Debug for ConnectorRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorRegistry")
            .field("kinds", &self.factories.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for ConnectorRegistry {
    /// [`ConnectorRegistry::new`]: the backends compiled into this crate.
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectorRegistry {
    /// A registry that knows no kind.
    pub fn empty() -> Self {
        Self {
            factories: BTreeMap::new(),
        }
    }

    /// The backends compiled into this crate: with feature `local`, `local` (a folder) and
    /// `local-file` (one file); with features `s3`, `gcs`, `azure` and `http`, the kinds
    /// `s3`, `gs`, `az` and `http` (see [`crate::object`]).
    /// With feature `gdrive`, `gdrive` (see [`crate::gdrive`]).
    pub fn new() -> Self {
        #[allow(unused_mut)]
        let mut r = Self::empty();
        #[cfg(feature = "local")]
        {
            r.register(kind::LOCAL, |spec: &SourceSpec| {
                let path = local_path(spec)?;
                Ok(Arc::new(crate::LocalConnector::new(path)?) as Arc<dyn Connector>)
            });
            r.register(kind::LOCAL_FILE, |spec: &SourceSpec| {
                let path = local_path(spec)?;
                Ok(Arc::new(crate::LocalConnector::single_file(path)?) as Arc<dyn Connector>)
            });
        }
        #[cfg(feature = "s3")]
        r.register(kind::S3, |spec: &SourceSpec| {
            Ok(Arc::new(crate::object::s3::build(spec)?) as Arc<dyn Connector>)
        });
        #[cfg(feature = "gcs")]
        r.register(kind::GCS, |spec: &SourceSpec| {
            Ok(Arc::new(crate::object::gcs::build(spec)?) as Arc<dyn Connector>)
        });
        #[cfg(feature = "azure")]
        r.register(kind::AZURE, |spec: &SourceSpec| {
            Ok(Arc::new(crate::object::azure::build(spec)?) as Arc<dyn Connector>)
        });
        #[cfg(feature = "http")]
        r.register(kind::HTTP, |spec: &SourceSpec| {
            Ok(Arc::new(crate::object::http::build(spec)?) as Arc<dyn Connector>)
        });
        #[cfg(feature = "gdrive")]
        r.register(kind::GDRIVE, |spec: &SourceSpec| {
            Ok(Arc::new(crate::GDriveConnector::from_spec(spec)?) as Arc<dyn Connector>)
        });
        r
    }

    /// Register (or replace) the factory of `kind`.
    pub fn register<F>(&mut self, kind: impl Into<String>, factory: F) -> &mut Self
    where
        F: Fn(&SourceSpec) -> Result<Arc<dyn Connector>, SourceError> + Send + Sync + 'static,
    {
        self.factories.insert(kind.into(), Arc::new(factory));
        self
    }

    /// [`register`](Self::register), by value.
    pub fn with<F>(mut self, kind: impl Into<String>, factory: F) -> Self
    where
        F: Fn(&SourceSpec) -> Result<Arc<dyn Connector>, SourceError> + Send + Sync + 'static,
    {
        self.register(kind, factory);
        self
    }

    /// Whether a factory is registered for `kind`.
    pub fn supports(&self, kind: &str) -> bool {
        self.factories.contains_key(kind)
    }

    /// The registered kinds, sorted.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }

    /// The URI schemes the registered kinds accept, sorted (`file` for the local kinds).
    pub fn schemes(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .kinds()
            .flat_map(|k| match k {
                kind::LOCAL | kind::LOCAL_FILE => vec!["file".to_owned()],
                kind::HTTP => vec!["http".to_owned(), "https".to_owned()],
                other => vec![other.to_owned()],
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Build the connector of `spec` with the factory of its kind. Fails with
    /// [`SourceError::UnsupportedScheme`] if no factory is registered for the kind, else
    /// with what the factory returns (e.g. [`SourceError::Connector`] for a folder that
    /// no longer exists).
    pub fn build(&self, spec: &SourceSpec) -> Result<Arc<dyn Connector>, SourceError> {
        let factory =
            self.factories
                .get(spec.kind())
                .ok_or_else(|| SourceError::UnsupportedScheme {
                    scheme: spec.scheme().to_owned(),
                    kind: spec.kind().to_owned(),
                    supported: self.schemes(),
                })?;
        factory(spec)
    }

    /// Parse `input` ([`SourceSpec::parse`]) and build its connector: the spec (whose
    /// [`uri`](SourceSpec::uri) and [`kind`](SourceSpec::kind) are what to store) and the
    /// connector.
    pub fn open(&self, input: &str) -> Result<(SourceSpec, Arc<dyn Connector>), SourceError> {
        let spec = SourceSpec::parse(input)?;
        let connector = self.build(&spec)?;
        Ok((spec, connector))
    }
}

#[cfg(feature = "local")]
fn local_path(spec: &SourceSpec) -> Result<&std::path::Path, SourceError> {
    spec.local_path().ok_or_else(|| SourceError::InvalidUri {
        input: spec.uri().to_owned(),
        reason: format!("kind {} is not a local path", spec.kind()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    #[cfg(feature = "local")]
    async fn default_builds_local_folders_and_files() {
        use heimdex_core::ConnectorError;
        use heimdex_core::connector::ListRequest;

        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        // A minimal MP4 header ("ftyp") so the connector lists it as a video.
        let mut mp4 = vec![0, 0, 0, 24];
        mp4.extend_from_slice(b"ftypisom\0\0\0\0isommp41");
        std::fs::write(dir.join("a.mp4"), &mp4).unwrap();
        std::fs::write(dir.join("b.mp4"), &mp4).unwrap();
        let registry = ConnectorRegistry::default();
        assert_eq!(
            registry
                .kinds()
                .filter(|k| k.starts_with("local"))
                .collect::<Vec<_>>(),
            ["local", "local-file"]
        );

        let (spec, folder) = registry.open(dir.to_str().unwrap()).unwrap();
        assert_eq!(spec.kind(), kind::LOCAL);
        let keys: Vec<String> = folder
            .list(ListRequest::default())
            .await
            .unwrap()
            .objects
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["a.mp4", "b.mp4"]);

        let (spec, file) = registry
            .open(&format!("file://{}/b.mp4", dir.display()))
            .unwrap();
        assert_eq!(spec.kind(), kind::LOCAL_FILE);
        let keys: Vec<String> = file
            .list(ListRequest::default())
            .await
            .unwrap()
            .objects
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["b.mp4"]);

        // Stored sources (kind + uri as an earlier version stored them) rebuild the same way.
        let stored = SourceSpec::stored(spec.kind(), spec.uri()).unwrap();
        assert_eq!(stored.uri(), spec.uri());
        assert_eq!(
            registry
                .build(&stored)
                .unwrap()
                .stat("b.mp4")
                .await
                .unwrap()
                .size,
            24
        );

        // A stored folder that is gone: the connector cannot be built.
        let gone = SourceSpec::stored(kind::LOCAL, dir.join("gone").to_str().unwrap()).unwrap();
        assert!(matches!(
            registry.build(&gone),
            Err(SourceError::Connector(ConnectorError::NotFound { .. }))
        ));
    }

    #[test]
    fn unknown_kinds_name_the_scheme_and_the_supported_ones() {
        let registry = ConnectorRegistry::empty().with(kind::S3, |_: &SourceSpec| {
            Err(SourceError::InvalidOption {
                key: "region".into(),
                reason: "required".into(),
            })
        });
        let err = registry
            .build(&SourceSpec::parse("gdrive://folder/abc").unwrap())
            .err()
            .unwrap();
        match &err {
            SourceError::UnsupportedScheme {
                scheme,
                kind,
                supported,
            } => {
                assert_eq!((scheme.as_str(), kind.as_str()), ("gdrive", "gdrive"));
                assert_eq!(supported, &["s3"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "no connector for gdrive:// sources (supported: s3)"
        );
        // The factory's own error comes back unchanged.
        assert!(matches!(
            registry.build(&SourceSpec::parse("s3a://b/p").unwrap()),
            Err(SourceError::InvalidOption { .. })
        ));
    }

    #[test]
    #[cfg(all(
        feature = "local",
        not(any(feature = "s3", feature = "gcs", feature = "azure", feature = "http"))
    ))]
    #[cfg(not(feature = "gdrive"))]
    fn schemes_and_debug() {
        let r = ConnectorRegistry::default().with(kind::HTTP, |_: &SourceSpec| {
            Err(SourceError::InvalidOption {
                key: "x".into(),
                reason: "test".into(),
            })
        });
        assert_eq!(r.schemes(), ["file", "http", "https"]);
        assert!(r.supports("local") && !r.supports("s3"));
        assert_eq!(
            format!("{r:?}"),
            r#"ConnectorRegistry { kinds: ["http", "local", "local-file"] }"#
        );
        assert!(ConnectorRegistry::empty().kinds().next().is_none());
    }

    #[test]
    #[cfg(all(feature = "s3", feature = "gcs", feature = "azure", feature = "http"))]
    fn object_store_kinds_are_registered() {
        let r = ConnectorRegistry::default();
        for k in [kind::S3, kind::GCS, kind::AZURE, kind::HTTP] {
            assert!(r.supports(k), "{k}");
        }
        for s in ["az", "gs", "http", "https", "s3"] {
            assert!(r.schemes().iter().any(|x| x == s), "{s}");
        }
        // Factories refuse unknown options, naming them; nothing is contacted.
        for uri in ["s3://b/p", "gs://b/p", "az://c/p", "https://h/p/"] {
            let spec = SourceSpec::parse(uri).unwrap().with_option("colour", "red");
            assert!(
                matches!(r.build(&spec), Err(SourceError::InvalidOption { ref key, .. }) if key == "colour"),
                "{uri}"
            );
        }
        let (spec, c) = r.open("s3a://Media/Q2/").unwrap();
        assert_eq!(
            (spec.kind(), spec.uri(), c.name()),
            ("s3", "s3://media/Q2", "s3")
        );
    }
}
