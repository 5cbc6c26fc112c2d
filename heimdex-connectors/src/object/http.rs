//! Web servers: `https://host/folder/` (a folder) or `https://host/folder/clip.mp4` (one file).
//!
//! What works, and how:
//!
//! - **One file** — a URI whose path does not end in `/` is a one-object source: its key is
//!   the file name, read with ranged `GET`s (`Range: bytes=…`) from any web server that
//!   supports ranges (a server that answers a range with the whole file is refused, as
//!   object_store does: it would read far more than asked). `stat` is a `HEAD`.
//! - **A folder on a WebDAV server** — a URI ending in `/` is listed with one `PROPFIND`
//!   (`Depth: infinity`) request: nginx with `dav_methods`/`dav_ext`, Apache `mod_dav`,
//!   wsgidav, rclone serve webdav, … The response is sorted by key here (WebDAV has no order).
//! - **A folder on a plain web server** — it cannot be listed: listing fails with
//!   [`ConnectorError::NotSupported`](heimdex_core::ConnectorError::NotSupported) saying so,
//!   unless the `files` option names the files (comma-separated, relative to the folder);
//!   the listing then `HEAD`s those (one request per file of the page).
//!
//! Versions are the server's ETags (`If-Match` makes checked reads conditional); a server
//! without ETags gets `size-mtime` versions and checked reads compare after reading.
//! Query strings (signed URLs) are not supported: object_store's HTTP client builds each
//! object's URL from the server root and the key. `endpoint` replaces `scheme://host:port`
//! (e.g. a local mirror of the same tree); other options are object_store client options
//! (`timeout`, `connect_timeout`, `proxy_url`, `allow_invalid_certificates`, `user_agent`,
//! …). `allow_http` is implied by an `http://` URI or endpoint.
//!
//! ```
//! use heimdex_connectors::SourceSpec;
//! use heimdex_connectors::object::http;
//! # fn main() -> Result<(), heimdex_connectors::SourceError> {
//! let folder = http::build(&SourceSpec::parse("https://media.example.com/archive/2024/")?)?;
//! assert_eq!(folder.prefix(), "archive/2024");
//! let file = http::build(&SourceSpec::parse("https://media.example.com/archive/a%20b.mp4")?)?;
//! assert_eq!(file.prefix(), "archive"); // and the one key is "a b.mp4"
//! # Ok(()) }
//! ```

use std::sync::Arc;

use object_store::ClientConfigKey;
use object_store::http::HttpBuilder;

use super::{ObjectStoreConnector, RETRY_KEYS, build_error, retry_config};
use crate::source::{SourceError, SourceSpec};

/// Connector name of HTTP sources.
pub const NAME: &str = "http";

/// What an `http(s)://` source names: the server root URL, the folder path below it
/// (percent-decoded, no leading or trailing `/`), and the file name for one-file sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// `scheme://host[:port]` (after the `endpoint` option).
    pub root: String,
    /// The folder, e.g. `archive/2024`; empty for the server root.
    pub folder: String,
    /// The file name of a one-file source.
    pub file: Option<String>,
}

/// Where `spec` points, after the `endpoint` option.
pub fn target(spec: &SourceSpec) -> Result<HttpTarget, SourceError> {
    let path = spec.path();
    if path.contains('?') {
        return Err(SourceError::InvalidUri {
            input: spec.uri().to_owned(),
            reason: "query strings (signed URLs) are not supported by the http connector".into(),
        });
    }
    let root = match spec.options().get("endpoint") {
        Some(e) => {
            let e = e.trim_end_matches('/');
            let rest = e
                .strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains('/')) {
                return Err(SourceError::InvalidOption {
                    key: "endpoint".into(),
                    reason: format!("expected http(s)://host[:port] without a path, got {e:?}"),
                });
            }
            e.to_owned()
        }
        None => format!("{}://{}", spec.scheme(), spec.authority()),
    };
    let mut segments = Vec::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        let seg = percent_decode(seg).ok_or_else(|| SourceError::InvalidUri {
            input: spec.uri().to_owned(),
            reason: "bad percent-encoding or not UTF-8".into(),
        })?;
        if seg == "." || seg == ".." || seg.contains('/') {
            return Err(SourceError::InvalidUri {
                input: spec.uri().to_owned(),
                reason: "`.`, `..` and encoded `/` are not allowed in the path".into(),
            });
        }
        segments.push(seg);
    }
    let file = if path.ends_with('/') {
        None
    } else {
        segments.pop()
    };
    Ok(HttpTarget {
        root,
        folder: segments.join("/"),
        file,
    })
}

/// The store builder of `spec` (server root, client options).
pub fn builder(spec: &SourceSpec) -> Result<HttpBuilder, SourceError> {
    let t = target(spec)?;
    let mut b = HttpBuilder::new().with_url(t.root.clone());
    if t.root.starts_with("http://") {
        b = b.with_config(ClientConfigKey::AllowHttp, "true");
    }
    if let Some(retry) = retry_config(spec.options())? {
        b = b.with_retry(retry);
    }
    for (key, value) in spec.options().iter() {
        if matches!(key, "endpoint" | "files") || RETRY_KEYS.contains(&key) {
            continue;
        }
        let k: ClientConfigKey = key.parse().map_err(|_| SourceError::InvalidOption {
            key: key.to_owned(),
            reason: "unknown option for http(s):// sources".into(),
        })?;
        b = b.with_config(k, value);
    }
    Ok(b)
}

/// The connector of an `http(s)://` source (see the [module docs](self)).
pub fn build(spec: &SourceSpec) -> Result<ObjectStoreConnector, SourceError> {
    let t = target(spec)?;
    let store = builder(spec)?
        .build()
        .map_err(|e| build_error(NAME, spec.uri(), e))?;
    Ok(connector(spec, &t, Arc::new(store)))
}

/// The connector of `spec` over an already built store of its server root.
pub fn connector(
    spec: &SourceSpec,
    t: &HttpTarget,
    store: Arc<dyn object_store::ObjectStore>,
) -> ObjectStoreConnector {
    let c = ObjectStoreConnector::new(NAME, store, &t.folder, spec.uri());
    if let Some(file) = &t.file {
        return c.with_keys([file.clone()]);
    }
    match spec.options().get("files") {
        Some(list) => c.with_keys(
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        ),
        None => c.with_webdav_listing(),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
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

    fn t(uri: &str) -> HttpTarget {
        target(&SourceSpec::parse(uri).unwrap()).unwrap()
    }

    #[test]
    fn folders_files_and_endpoints() {
        assert_eq!(
            t("https://Host:8443/a/my%20videos/"),
            HttpTarget {
                root: "https://host:8443".into(),
                folder: "a/my videos".into(),
                file: None
            }
        );
        assert_eq!(
            t("http://host/a/clip%231.mp4"),
            HttpTarget {
                root: "http://host".into(),
                folder: "a".into(),
                file: Some("clip#1.mp4".into())
            }
        );
        assert_eq!(t("http://host").folder, "");
        let spec = SourceSpec::parse("https://cdn.example.com/v/")
            .unwrap()
            .with_option("endpoint", "http://127.0.0.1:8080/");
        assert_eq!(target(&spec).unwrap().root, "http://127.0.0.1:8080");
        assert!(build(&spec).is_ok());

        for (key, value) in [
            ("endpoint", "http://127.0.0.1:8080/mirror"),
            ("endpoint", "ftp://x"),
            ("region", "eu"),
        ] {
            let spec = SourceSpec::parse("https://h/v/")
                .unwrap()
                .with_option(key, value);
            match build(&spec) {
                Err(SourceError::InvalidOption { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}={value}: {other:?}"),
            }
        }
        assert!(matches!(
            build(&SourceSpec::parse("https://h/v/?sig=1").unwrap()),
            Err(SourceError::InvalidUri { .. })
        ));
        assert!(matches!(
            build(&SourceSpec::parse("https://h/v/%2e%2e/x.mp4").unwrap()),
            Err(SourceError::InvalidUri { .. })
        ));
        let spec = SourceSpec::parse("https://h/v/")
            .unwrap()
            .with_options([("files", "a.mp4, b/c.mov,"), ("timeout", "30s")]);
        assert!(build(&spec).is_ok());
    }
}
