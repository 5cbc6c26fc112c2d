//! Sources are URIs: the string that names a source, parsed and normalised.
//!
//! A source is a URI plus options, the same string in the CLI, the library, the HTTP API and
//! the Python bindings:
//!
//! | input | kind | stored URI |
//! |---|---|---|
//! | `/videos`, `./videos`, `file:///videos` (a folder) | `local` | `/videos` (absolute, canonical) |
//! | `/videos/a.mp4`, `file:///videos/a.mp4` (a file) | `local-file` | `/videos/a.mp4` |
//! | `s3://bucket/prefix/` (also `s3a://`) | `s3` | `s3://bucket/prefix` |
//! | `gs://bucket/prefix` (also `gcs://`) | `gs` | `gs://bucket/prefix` |
//! | `az://container/prefix` (also `azure://`) | `az` | `az://container/prefix` |
//! | `https://host/path/` (or `http://`) | `http` | `https://host/path/` |
//! | `gdrive://folder/<id>` | `gdrive` | `gdrive://folder/<id>` |
//! | `gdrive://shared-drive/<id>`, `gdrive://my-drive` | `gdrive` | verbatim |
//! | `other://authority/rest` | `other` | verbatim, scheme lower-cased |
//!
//! Parsing only reads the string, except for local paths: they are made absolute and
//! canonical (symlinks resolved), and whether the path is a folder or a file decides the kind,
//! so a local path must exist. Every other scheme is syntax only; whether a connector exists
//! for it is the [`ConnectorRegistry`](crate::ConnectorRegistry)'s answer, so a new kind of
//! storage plugs in by registering a factory, without changing this parser.
//!
//! The normalised [`uri`](SourceSpec::uri) is the source's identity: two spellings of the
//! same place (`./videos/`, `file:///abs/videos`; `s3a://b/p/`, `s3://b/p`) give the same
//! string, which is what a store keeps and what a source id is derived from. Local sources
//! keep the plain absolute path (not `file://`), as sources stored by earlier versions do.
//!
//! Credentials never go in the URI (a URI with `user:password@` is refused: it would be
//! stored); they are [`SourceOptions`], given again each time a connector is built.

use std::collections::BTreeMap;
use std::path::Path;

use heimdex_core::ConnectorError;
use heimdex_core::connector::io_error;

/// Source kinds known to this crate. A kind names the connector that serves a source; it is
/// stored with the source next to its URI.
pub mod kind {
    /// A folder on a local disk.
    pub const LOCAL: &str = "local";
    /// A single file on a local disk.
    pub const LOCAL_FILE: &str = "local-file";
    /// Amazon S3 and S3-compatible stores (MinIO): `s3://bucket/prefix`.
    pub const S3: &str = "s3";
    /// Google Cloud Storage: `gs://bucket/prefix`.
    pub const GCS: &str = "gs";
    /// Azure Blob Storage: `az://container/prefix`.
    pub const AZURE: &str = "az";
    /// A web server: `https://host/path/` (and `http://`).
    pub const HTTP: &str = "http";
    /// Google Drive: `gdrive://folder/<id>`, `gdrive://shared-drive/<id>`, `gdrive://my-drive`.
    pub const GDRIVE: &str = "gdrive";
}

/// Errors of parsing a source or building its connector.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The string is not a valid source URI or path.
    #[error("invalid source {input:?}: {reason}")]
    InvalidUri {
        /// The input as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connector is registered for this kind of source.
    #[error("no connector for {scheme}:// sources (supported: {})", supported.join(", "))]
    UnsupportedScheme {
        /// The URI scheme (`file` for local paths).
        scheme: String,
        /// The source kind the scheme maps to.
        kind: String,
        /// Schemes the registry can build connectors for, sorted.
        supported: Vec<String>,
    },
    /// An option is missing or has a bad value.
    #[error("source option {key:?}: {reason}")]
    InvalidOption {
        /// Option name.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The connector could not be built (e.g. the folder does not exist).
    #[error(transparent)]
    Connector(#[from] ConnectorError),
}

/// Options of a source: credentials, endpoints, regions, anything its connector needs beyond
/// the URI. Keys are lower-cased. Not part of the source's identity and not stored with it;
/// `Debug` shows the keys only, since values may be secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SourceOptions(BTreeMap<String, String>);

impl SourceOptions {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set `key` (lower-cased) to `value`, returning the previous value.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl Into<String>) -> Option<String> {
        self.0.insert(normalise_key(key.as_ref()), value.into())
    }

    /// The value of `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(&normalise_key(key)).map(String::as_str)
    }

    /// The value of `key`, or [`SourceError::InvalidOption`] saying it is required.
    pub fn require(&self, key: &str) -> Result<&str, SourceError> {
        self.get(key).ok_or_else(|| SourceError::InvalidOption {
            key: normalise_key(key),
            reason: "required".into(),
        })
    }

    /// The options that may be stored with a source: every option except secrets (keys
    /// naming a secret, password, token, key, credential, signature or SAS), so a stored
    /// source can be rebuilt after a restart with the same endpoint, region and style, and
    /// credentials come from the environment (or are given again).
    pub fn storable(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter(|(k, _)| !is_secret_key(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// All options in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of options.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No options set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SourceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl<K: AsRef<str>, V: Into<String>> FromIterator<(K, V)> for SourceOptions {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut o = Self::new();
        for (k, v) in iter {
            o.insert(k, v);
        }
        o
    }
}

impl<K: AsRef<str>, V: Into<String>> Extend<(K, V)> for SourceOptions {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

/// Whether an option key names a secret (never stored, never shown).
pub fn is_secret_key(key: &str) -> bool {
    const SECRET_WORDS: [&str; 8] = [
        "secret",
        "password",
        "token",
        "key",
        "credential",
        "signature",
        "sas",
        "session",
    ];
    let k = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| k.contains(w)) && !k.ends_with("_path") && !k.ends_with("_file")
}

fn normalise_key(key: &str) -> String {
    key.trim().to_ascii_lowercase()
}

/// A parsed, normalised source: its kind, its canonical URI and its options.
///
/// ```
/// use heimdex_connectors::{SourceSpec, source::kind};
/// # fn main() -> Result<(), heimdex_connectors::SourceError> {
/// let s3 = SourceSpec::parse("S3A://media/Campaigns/Q2/")?;
/// assert_eq!(s3.kind(), kind::S3);
/// assert_eq!(s3.uri(), "s3://media/Campaigns/Q2");
/// assert_eq!((s3.authority(), s3.path()), ("media", "Campaigns/Q2"));
///
/// let dir = std::env::temp_dir();
/// let local = SourceSpec::parse(dir.to_str().unwrap())?;
/// assert_eq!(local.kind(), kind::LOCAL);
/// assert_eq!(local.local_path(), Some(dir.canonicalize().unwrap().as_path()));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    scheme: String,
    kind: String,
    uri: String,
    authority: String,
    path: String,
    options: SourceOptions,
}

impl std::fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.uri)
    }
}

impl SourceSpec {
    /// Parse and normalise `input`: a URI (`scheme://…`) or a local path. See the
    /// [module docs](self) for the forms. A local path must exist (its kind depends on
    /// whether it is a folder or a file); other schemes are checked for syntax only.
    pub fn parse(input: &str) -> Result<Self, SourceError> {
        if input.trim().is_empty() {
            return Err(invalid(input, "empty"));
        }
        match split_scheme(input) {
            None => Self::local(input, Path::new(input)),
            Some((scheme, rest)) => {
                let scheme = scheme.to_ascii_lowercase();
                if scheme == "file" {
                    let path = file_uri_path(input, rest)?;
                    Self::local(input, Path::new(&path))
                } else {
                    Self::remote(input, &scheme, rest)
                }
            }
        }
    }

    /// [`parse`](Self::parse) with options.
    pub fn parse_with_options<K, V>(
        input: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, SourceError>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        Ok(Self::parse(input)?.with_options(options))
    }

    /// A source as a store keeps it: its `kind` and normalised `uri` (from [`kind`](Self::kind)
    /// and [`uri`](Self::uri) of an earlier parse). Nothing is read from disk or network:
    /// whether the place still exists is the connector's concern when it is built. The
    /// kind is taken as stored, so kinds this crate does not know pass through to the
    /// registry.
    pub fn stored(kind: &str, uri: &str) -> Result<Self, SourceError> {
        if kind == kind::LOCAL || kind == kind::LOCAL_FILE {
            if !Path::new(uri).is_absolute() {
                return Err(invalid(
                    uri,
                    "a stored local source must be an absolute path",
                ));
            }
            return Ok(Self {
                scheme: "file".into(),
                kind: kind.to_owned(),
                uri: uri.to_owned(),
                authority: String::new(),
                path: uri.to_owned(),
                options: SourceOptions::new(),
            });
        }
        let (scheme, rest) =
            split_scheme(uri).ok_or_else(|| invalid(uri, "a stored source URI needs a scheme"))?;
        let mut spec = Self::remote(uri, &scheme.to_ascii_lowercase(), rest)?;
        kind.clone_into(&mut spec.kind);
        Ok(spec)
    }

    /// Add options (later values of a key replace earlier ones).
    pub fn with_options<K, V>(mut self, options: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        self.options.extend(options);
        self
    }

    /// Add one option.
    pub fn with_option(mut self, key: impl AsRef<str>, value: impl Into<String>) -> Self {
        self.options.insert(key, value);
        self
    }

    /// The source kind ([`kind`] constants, or the scheme for schemes this crate does not
    /// know): what the [`ConnectorRegistry`](crate::ConnectorRegistry) looks up.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The normalised URI: the source's identity, as stored (see the [module docs](self)).
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The scheme, lower-case and with aliases resolved (`s3a` → `s3`); `file` for local
    /// sources.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The bucket, container, host or Drive collection (`folder`); empty for local sources.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// For object stores and Drive the prefix or id without leading or trailing `/` (empty
    /// for a whole bucket); for `http` the path with its query; for local sources the
    /// absolute path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The absolute path of a local source.
    pub fn local_path(&self) -> Option<&Path> {
        (self.kind == kind::LOCAL || self.kind == kind::LOCAL_FILE).then(|| Path::new(&self.path))
    }

    /// The options.
    pub fn options(&self) -> &SourceOptions {
        &self.options
    }

    fn local(input: &str, path: &Path) -> Result<Self, SourceError> {
        let abs = path
            .canonicalize()
            .map_err(|e| io_error(kind::LOCAL, &path.display().to_string(), e))?;
        let uri = abs
            .to_str()
            .ok_or_else(|| invalid(input, "the path is not valid UTF-8"))?
            .to_owned();
        let kind = if abs.is_dir() {
            kind::LOCAL
        } else {
            kind::LOCAL_FILE
        };
        Ok(Self {
            scheme: "file".into(),
            kind: kind.into(),
            path: uri.clone(),
            uri,
            authority: String::new(),
            options: SourceOptions::new(),
        })
    }

    fn remote(input: &str, scheme: &str, rest: &str) -> Result<Self, SourceError> {
        let (scheme, kind) = match scheme {
            "s3" | "s3a" => ("s3", kind::S3),
            "gs" | "gcs" => ("gs", kind::GCS),
            "az" | "azure" => ("az", kind::AZURE),
            "http" => ("http", kind::HTTP),
            "https" => ("https", kind::HTTP),
            "gdrive" => ("gdrive", kind::GDRIVE),
            other => (other, other),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.is_empty() {
            return Err(invalid(
                input,
                &format!("{scheme}:// needs a bucket, container or host after `//`"),
            ));
        }
        if authority.contains('@') {
            return Err(invalid(
                input,
                "credentials do not belong in a source URI (it is stored); pass them as options",
            ));
        }
        // Buckets, containers and host names are case-insensitive; other schemes' are kept.
        let known = matches!(
            kind,
            kind::S3 | kind::GCS | kind::AZURE | kind::HTTP | kind::GDRIVE
        );
        let authority = if known {
            authority.to_ascii_lowercase()
        } else {
            authority.to_owned()
        };
        let (path, uri) = match kind {
            kind::S3 | kind::GCS | kind::AZURE | kind::GDRIVE => {
                if tail.contains(['?', '#']) {
                    return Err(invalid(
                        input,
                        "a query or fragment is not part of an object-store source; pass settings as options",
                    ));
                }
                let mut segments = Vec::new();
                for seg in tail.split('/').filter(|s| !s.is_empty()) {
                    if seg == "." || seg == ".." {
                        return Err(invalid(input, "`.` and `..` are not allowed in a prefix"));
                    }
                    segments.push(seg);
                }
                let path = segments.join("/");
                let uri = if path.is_empty() {
                    format!("{scheme}://{authority}")
                } else {
                    format!("{scheme}://{authority}/{path}")
                };
                (path, uri)
            }
            kind::HTTP => {
                // The fragment never reaches the server; the query may matter to it.
                let tail = tail.split('#').next().unwrap_or_default();
                let path = if tail.starts_with('/') {
                    tail.to_owned()
                } else {
                    format!("/{tail}")
                };
                let uri = format!("{scheme}://{authority}{path}");
                (path, uri)
            }
            _ => (tail.to_owned(), format!("{scheme}://{authority}{tail}")),
        };
        Ok(Self {
            scheme: scheme.to_owned(),
            kind: kind.to_owned(),
            uri,
            authority,
            path,
            options: SourceOptions::new(),
        })
    }
}

fn invalid(input: &str, reason: &str) -> SourceError {
    SourceError::InvalidUri {
        input: input.to_owned(),
        reason: reason.to_owned(),
    }
}

/// `scheme` and what follows `://`, if `input` starts with a URI scheme (RFC 3986: a letter,
/// then letters, digits, `+`, `-`, `.`).
fn split_scheme(input: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = input.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some((scheme, rest))
}

/// The path of a `file://` URI (after `file://`): empty or `localhost` host, percent-decoded.
fn file_uri_path(input: &str, rest: &str) -> Result<String, SourceError> {
    let slash = rest.find('/').unwrap_or(rest.len());
    let (host, path) = rest.split_at(slash);
    if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
        return Err(invalid(
            input,
            &format!("file URIs name a local path (`file:///path`), not host {host:?}"),
        ));
    }
    if path.is_empty() {
        return Err(invalid(input, "no path after `file://`"));
    }
    if path.contains(['?', '#']) {
        return Err(invalid(
            input,
            "`?` and `#` in a file URI must be percent-encoded (%3F, %23), or give a plain path",
        ));
    }
    percent_decode(path).ok_or_else(|| invalid(input, "bad percent-encoding or not UTF-8"))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> SourceSpec {
        SourceSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn only_settings_are_storable() {
        let spec = parse("s3://bucket/p").with_options([
            ("endpoint", "http://127.0.0.1:9000"),
            ("Region", "eu-west-1"),
            ("secret_access_key", "s3cr3t"),
            ("access_key_id", "AKIA"),
            ("session_token", "t"),
            ("service_account_path", "/etc/sa.json"),
            ("refresh_token", "r"),
            ("sas", "sv=1"),
        ]);
        let stored: Vec<(String, String)> = spec.options().storable().into_iter().collect();
        assert_eq!(
            stored,
            vec![
                ("endpoint".to_owned(), "http://127.0.0.1:9000".to_owned()),
                ("region".to_owned(), "eu-west-1".to_owned()),
                ("service_account_path".to_owned(), "/etc/sa.json".to_owned()),
            ]
        );
    }

    #[test]
    fn object_store_uris_are_normalised() {
        for (input, kind, uri, authority, path) in [
            (
                "s3://bucket/prefix",
                kind::S3,
                "s3://bucket/prefix",
                "bucket",
                "prefix",
            ),
            (
                "S3A://Bucket//a/b/",
                kind::S3,
                "s3://bucket/a/b",
                "bucket",
                "a/b",
            ),
            ("s3://bucket", kind::S3, "s3://bucket", "bucket", ""),
            ("s3://bucket/", kind::S3, "s3://bucket", "bucket", ""),
            ("gs://b/x/", kind::GCS, "gs://b/x", "b", "x"),
            ("gcs://b/x", kind::GCS, "gs://b/x", "b", "x"),
            ("az://c/p", kind::AZURE, "az://c/p", "c", "p"),
            ("azure://c/p", kind::AZURE, "az://c/p", "c", "p"),
            (
                "gdrive://folder/1AbC_dEf",
                kind::GDRIVE,
                "gdrive://folder/1AbC_dEf",
                "folder",
                "1AbC_dEf",
            ),
        ] {
            let s = parse(input);
            assert_eq!(s.kind(), kind, "{input}");
            assert_eq!(s.uri(), uri, "{input}");
            assert_eq!(s.authority(), authority, "{input}");
            assert_eq!(s.path(), path, "{input}");
            assert_eq!(s.local_path(), None);
            // The normalised form parses to itself.
            assert_eq!(parse(s.uri()), s, "{input}");
        }
    }

    #[test]
    fn http_keeps_path_and_query_drops_fragment() {
        let s = parse("HTTPS://Media.Example.com/Archive/?sig=abc#top");
        assert_eq!(s.kind(), kind::HTTP);
        assert_eq!(s.scheme(), "https");
        assert_eq!(s.uri(), "https://media.example.com/Archive/?sig=abc");
        assert_eq!(s.path(), "/Archive/?sig=abc");
        let s = parse("http://host");
        assert_eq!(
            (s.scheme(), s.uri(), s.path()),
            ("http", "http://host/", "/")
        );
    }

    #[test]
    fn unknown_schemes_parse_verbatim_for_custom_connectors() {
        let s = parse("SFTP://Host:22/Videos/A");
        assert_eq!(s.kind(), "sftp");
        assert_eq!(s.uri(), "sftp://Host:22/Videos/A");
        assert_eq!(s.authority(), "Host:22");
        assert_eq!(s.path(), "/Videos/A");
    }

    #[test]
    fn bad_uris_are_typed_errors() {
        for input in [
            "",
            "   ",
            "s3://",
            "s3:///prefix",
            "s3://b/a/../c",
            "s3://b/p?region=x",
            "https://user:secret@host/",
            "file://otherhost/x",
            "file://",
            "file:///a%2",
            "file:///a%ff",
            "file:///a?b",
        ] {
            match SourceSpec::parse(input) {
                Err(SourceError::InvalidUri { input: i, .. }) => assert_eq!(i, input),
                other => panic!("{input:?}: expected InvalidUri, got {other:?}"),
            }
        }
    }

    #[test]
    fn local_paths_and_file_uris() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let dir = root.join("my videos");
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("a #1.mp4");
        std::fs::write(&file, b"x").unwrap();
        let dir_s = dir.to_str().unwrap();
        let file_s = file.to_str().unwrap();

        for input in [
            dir_s.to_owned(),
            format!("{dir_s}/"),
            format!("{dir_s}/./"),
            format!("{dir_s}/../my videos"),
            format!("file://{}", dir_s.replace(' ', "%20")),
            format!("FILE://localhost{dir_s}"),
        ] {
            let s = parse(&input);
            assert_eq!(s.kind(), kind::LOCAL, "{input}");
            assert_eq!(s.uri(), dir_s, "{input}");
            assert_eq!(s.scheme(), "file");
            assert_eq!(s.local_path(), Some(dir.as_path()));
        }
        let f = parse(&format!(
            "file://{}",
            file_s.replace(' ', "%20").replace('#', "%23")
        ));
        assert_eq!(f.kind(), kind::LOCAL_FILE);
        assert_eq!(f.uri(), file_s);
        assert_eq!(parse(file_s), f);

        // Relative paths become absolute (through the current directory).
        let cwd = std::env::current_dir().unwrap().canonicalize().unwrap();
        assert_eq!(parse(".").uri(), cwd.to_str().unwrap());

        match SourceSpec::parse(root.join("missing").to_str().unwrap()) {
            Err(SourceError::Connector(ConnectorError::NotFound { key })) => {
                assert!(key.ends_with("missing"), "{key}");
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    #[test]
    fn stored_sources_round_trip_without_touching_disk() {
        let s = SourceSpec::stored(kind::LOCAL, "/no/such/folder").unwrap();
        assert_eq!((s.kind(), s.uri()), (kind::LOCAL, "/no/such/folder"));
        assert_eq!(s.local_path(), Some(Path::new("/no/such/folder")));
        let f = SourceSpec::stored(kind::LOCAL_FILE, "/no/such/a.mp4").unwrap();
        assert_eq!(f.kind(), kind::LOCAL_FILE);
        assert!(matches!(
            SourceSpec::stored(kind::LOCAL, "relative/x"),
            Err(SourceError::InvalidUri { .. })
        ));
        let s3 = SourceSpec::stored(kind::S3, "s3://b/p").unwrap();
        assert_eq!(s3, parse("s3://b/p"));
        // A kind from a newer version passes through to the registry.
        let x = SourceSpec::stored("future-kind", "x://a/b").unwrap();
        assert_eq!(
            (x.kind(), x.scheme(), x.uri()),
            ("future-kind", "x", "x://a/b")
        );
        assert!(SourceSpec::stored(kind::S3, "no-scheme").is_err());
    }

    #[test]
    fn options_are_case_insensitive_and_redacted_in_debug() {
        let s = SourceSpec::parse_with_options(
            "s3://b/p",
            [("AWS_SECRET_ACCESS_KEY", "hunter2"), ("region", "eu")],
        )
        .unwrap()
        .with_option("Region", "us");
        assert_eq!(s.options().get("aws_secret_access_key"), Some("hunter2"));
        assert_eq!(s.options().get("REGION"), Some("us"));
        assert_eq!(s.options().len(), 2);
        assert!(matches!(
            s.options().require("endpoint"),
            Err(SourceError::InvalidOption { key, .. }) if key == "endpoint"
        ));
        let debug = format!("{s:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("aws_secret_access_key"), "{debug}");
        // Options are not part of the identity.
        assert_eq!(s.uri(), "s3://b/p");
        assert_eq!(s.to_string(), "s3://b/p");
    }
}
