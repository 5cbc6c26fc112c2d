//! Conformance suite for the [`Connector`] trait.
//!
//! A connector is read-only, so the suite drives it through a [`ConnectorFixture`] that can
//! write and delete objects in the backing storage (a temp folder, a test bucket).

use async_trait::async_trait;

use crate::connector::{Change, Connector, ConnectorError, ListRequest, list_all};
use crate::media::MediaKind;

/// Test access to a connector's backing storage.
#[async_trait]
pub trait ConnectorFixture: Send + Sync {
    /// The connector under test, rooted at the (initially empty) fixture storage.
    fn connector(&self) -> &dyn Connector;
    /// Create or overwrite an object.
    async fn put(&self, key: &str, bytes: &[u8]);
    /// Delete an object.
    async fn delete(&self, key: &str);
    /// Whether the connector lists by content (reads the first bytes of every file, as a
    /// local disk can afford) or, like every remote connector, by name only (see the
    /// [`Connector`] contract). Default: by content.
    fn lists_by_content(&self) -> bool {
        true
    }
}

/// The start of a WAV file (RIFF/WAVE), zero-padded to `len` bytes: recognised as audio by
/// content, whatever its name.
pub fn fake_wav(len: usize) -> Vec<u8> {
    let mut v = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
    v.resize(len.max(v.len()), 0);
    v
}

/// The bytes of a minimal ISO-BMFF (MP4) header followed by `len` filler bytes: recognised as
/// video by content, whatever its name.
pub fn fake_mp4(len: usize, fill: u8) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 0x18];
    v.extend_from_slice(b"ftypisom\0\0\x02\0isomiso2");
    v.resize(v.len() + len, fill);
    v
}

/// The Connector scenarios, in order. Adding a scenario is one line here.
#[doc(hidden)]
#[macro_export]
macro_rules! __connector_scenarios {
    ($mode:ident $arg:expr, $attrs:tt) => {
        $crate::__conformance_expand! { $mode connector, $arg, $attrs;
            list_empty,
            detects_video_by_content_and_name,
            stat_matches_listing,
            read_range_semantics,
            paging_is_complete_and_ordered,
            prefix_filter,
            changes_since_cursor,
            replaced_mid_read_is_changed,
            invalid_tokens_are_typed_errors,
        }
    };
}

/// One `#[tokio::test]` per Connector scenario. The argument is a factory, called once per
/// scenario, returning a future of a [`Fixture`](crate::conformance::Fixture) whose backend
/// implements [`ConnectorFixture`]. Each scenario clears the fixture's storage first.
#[macro_export]
macro_rules! connector_conformance_tests {
    ($make:expr $(, #[$meta:meta])* $(,)?) => {
        $crate::__connector_scenarios! { tests $make, [$(#[$meta])*] }
    };
}

async fn clear(f: &dyn ConnectorFixture) {
    let all = list_all(f.connector(), None).await.expect("list for clear");
    for o in all {
        f.delete(&o.key).await;
    }
}

/// An empty source lists nothing and has no next page.
pub async fn list_empty(f: &dyn ConnectorFixture) {
    clear(f).await;
    let page = f
        .connector()
        .list(ListRequest::default())
        .await
        .expect("list");
    assert!(page.objects.is_empty(), "list_empty: {:?}", page.objects);
    assert!(
        page.next_page_token.is_none(),
        "list_empty: token on empty listing"
    );
}

/// Video content under any name is listed, audio files too; a video-named file with other
/// content is listed as `UnknownWithVideoExtension`; other files are not listed. A connector
/// that lists by name only lists the video- and audio-named objects, all as
/// `UnknownWithVideoExtension`.
pub async fn detects_video_by_content_and_name(f: &dyn ConnectorFixture) {
    clear(f).await;
    f.put("clip.bin", &fake_mp4(100, 1)).await;
    f.put("broken.mp4", b"this is not a video at all").await;
    f.put("empty.mov", b"").await;
    f.put("notes.txt", b"meeting notes").await;
    f.put("nested/deeper/take1.MOV", &fake_mp4(10, 2)).await;
    f.put("interview.wav", &fake_wav(64)).await;
    f.put("voice memo", &fake_wav(32)).await;
    let all = list_all(f.connector(), None).await.expect("list");
    let keys: Vec<(&str, MediaKind)> = all.iter().map(|o| (o.key.as_str(), o.media)).collect();
    let expected = if f.lists_by_content() {
        vec![
            ("broken.mp4", MediaKind::UnknownWithVideoExtension),
            ("clip.bin", MediaKind::IsoBmff),
            ("empty.mov", MediaKind::UnknownWithVideoExtension),
            ("interview.wav", MediaKind::Wav),
            ("nested/deeper/take1.MOV", MediaKind::IsoBmff),
            ("voice memo", MediaKind::Wav),
        ]
    } else {
        vec![
            ("broken.mp4", MediaKind::UnknownWithVideoExtension),
            ("empty.mov", MediaKind::UnknownWithVideoExtension),
            ("interview.wav", MediaKind::UnknownWithVideoExtension),
            (
                "nested/deeper/take1.MOV",
                MediaKind::UnknownWithVideoExtension,
            ),
        ]
    };
    assert_eq!(keys, expected, "detects_video_by_content_and_name");
    let take = all
        .iter()
        .find(|o| o.key == "nested/deeper/take1.MOV")
        .expect("take listed");
    assert_eq!(take.size, fake_mp4(10, 2).len() as u64);
    assert!(!take.version.is_empty());
    clear(f).await;
}

/// `stat` returns what the listing returned; a missing key is `NotFound`.
pub async fn stat_matches_listing(f: &dyn ConnectorFixture) {
    clear(f).await;
    f.put("a/one.mp4", &fake_mp4(50, 3)).await;
    let listed = list_all(f.connector(), None).await.expect("list");
    let stat = f.connector().stat("a/one.mp4").await.expect("stat");
    assert_eq!(listed, vec![stat], "stat_matches_listing");
    let err = f
        .connector()
        .stat("a/missing.mp4")
        .await
        .expect_err("missing");
    assert!(
        matches!(err, ConnectorError::NotFound { .. }),
        "stat_matches_listing: {err:?}"
    );
    clear(f).await;
}

/// Ranges return exactly the asked bytes, clipped at the end; past the end is an error.
pub async fn read_range_semantics(f: &dyn ConnectorFixture) {
    clear(f).await;
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let mut body = fake_mp4(0, 0);
    body.extend_from_slice(&data);
    let len = body.len() as u64;
    f.put("r.mp4", &body).await;
    let c = f.connector();
    let got = c.read_range("r.mp4", 100..1100).await.expect("mid range");
    assert_eq!(&got[..], &body[100..1100], "read_range_semantics: middle");
    let got = c
        .read_range("r.mp4", len - 10..len + 500)
        .await
        .expect("clipped");
    assert_eq!(
        &got[..],
        &body[(len - 10) as usize..],
        "read_range_semantics: clipped"
    );
    let got = c.read_range("r.mp4", 5..5).await.expect("empty");
    assert!(got.is_empty(), "read_range_semantics: empty range");
    let err = c
        .read_range("r.mp4", len..len + 1)
        .await
        .expect_err("past end");
    assert!(
        matches!(err, ConnectorError::RangeOutOfBounds { .. }),
        "read_range_semantics: {err:?}"
    );
    let err = c.read_range("nope.mp4", 0..1).await.expect_err("missing");
    assert!(
        matches!(err, ConnectorError::NotFound { .. }),
        "read_range_semantics: {err:?}"
    );
    clear(f).await;
}

/// Following page tokens yields every candidate once, in key order.
pub async fn paging_is_complete_and_ordered(f: &dyn ConnectorFixture) {
    clear(f).await;
    let mut expected = Vec::new();
    for d in ["a", "b", "b/c", ""] {
        for i in 0..6 {
            let key = if d.is_empty() {
                format!("top{i}.mp4")
            } else {
                format!("{d}/v{i}.mp4")
            };
            f.put(&key, &fake_mp4(i, 9)).await;
            expected.push(key);
        }
    }
    f.put("a.mp4", &fake_mp4(1, 1)).await;
    expected.push("a.mp4".into());
    expected.sort();
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let mut req = ListRequest::with_page_size(5);
        req.page_token = token.take();
        let page = f.connector().list(req).await.expect("page");
        assert!(page.objects.len() <= 5, "paging: page too big");
        seen.extend(page.objects.into_iter().map(|o| o.key));
        pages += 1;
        assert!(pages < 100, "paging: does not terminate");
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen, expected, "paging_is_complete_and_ordered");
    assert!(pages >= 5, "paging: expected at least 5 pages, got {pages}");
    clear(f).await;
}

/// A prefix limits the listing to keys starting with it.
pub async fn prefix_filter(f: &dyn ConnectorFixture) {
    clear(f).await;
    f.put("q2/sunset.mp4", &fake_mp4(1, 1)).await;
    f.put("q2/dawn.mp4", &fake_mp4(1, 1)).await;
    f.put("q3/night.mp4", &fake_mp4(1, 1)).await;
    let got = list_all(f.connector(), Some("q2/".into()))
        .await
        .expect("list");
    let keys: Vec<&str> = got.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, vec!["q2/dawn.mp4", "q2/sunset.mp4"], "prefix_filter");
    clear(f).await;
}

/// New, modified and deleted objects are reported against a cursor; an unchanged source
/// reports nothing.
pub async fn changes_since_cursor(f: &dyn ConnectorFixture) {
    clear(f).await;
    let c = f.connector();
    f.put("keep.mp4", &fake_mp4(10, 1)).await;
    f.put("edit.mp4", &fake_mp4(10, 1)).await;
    f.put("gone.mp4", &fake_mp4(10, 1)).await;
    let first = c.changes(None).await.expect("first changes");
    assert_eq!(first.changes.len(), 3, "changes: initial");
    assert!(first.changes.iter().all(|ch| matches!(ch, Change::New(_))));
    let again = c.changes(Some(&first.cursor)).await.expect("no changes");
    assert!(
        again.changes.is_empty(),
        "changes: unchanged source reported {:?}",
        again.changes
    );
    f.put("edit.mp4", &fake_mp4(20, 2)).await;
    f.delete("gone.mp4").await;
    f.put("fresh.mp4", &fake_mp4(5, 5)).await;
    let delta = c.changes(Some(&again.cursor)).await.expect("delta");
    let summary: Vec<String> = delta
        .changes
        .iter()
        .map(|ch| match ch {
            Change::New(m) => format!("new {}", m.key),
            Change::Modified(m) => format!("modified {}", m.key),
            Change::Deleted { key } => format!("deleted {key}"),
        })
        .collect();
    assert_eq!(
        summary,
        vec!["modified edit.mp4", "new fresh.mp4", "deleted gone.mp4"],
        "changes_since_cursor"
    );
    let after = c.changes(Some(&delta.cursor)).await.expect("after");
    assert!(
        after.changes.is_empty(),
        "changes: after delta {:?}",
        after.changes
    );
    clear(f).await;
}

/// A checked read of the listed version succeeds; once the object is replaced, a checked
/// read of the old version is `Changed` (naming both versions) and of the new one succeeds.
pub async fn replaced_mid_read_is_changed(f: &dyn ConnectorFixture) {
    clear(f).await;
    let c = f.connector();
    let first = fake_mp4(4_000, 1);
    f.put("swap.mp4", &first).await;
    let v1 = c.stat("swap.mp4").await.expect("stat v1").version;
    let got = c
        .read_range_checked("swap.mp4", 10..110, &v1)
        .await
        .expect("checked read of the current version");
    assert_eq!(&got[..], &first[10..110], "replaced_mid_read: bytes of v1");
    let second = fake_mp4(6_000, 2);
    f.put("swap.mp4", &second).await;
    let err = c
        .read_range_checked("swap.mp4", 110..210, &v1)
        .await
        .expect_err("old version after replacement");
    match &err {
        ConnectorError::Changed {
            key,
            expected,
            found,
        } => {
            assert_eq!(key, "swap.mp4");
            assert_eq!(expected, &v1);
            assert_ne!(found, &v1, "replaced_mid_read: found is the new version");
        }
        other => panic!("replaced_mid_read: expected Changed, got {other:?}"),
    }
    assert_eq!(err.kind(), crate::error::ErrorKind::Unavailable);
    let v2 = c.stat("swap.mp4").await.expect("stat v2").version;
    let got = c
        .read_range_checked("swap.mp4", 110..210, &v2)
        .await
        .expect("checked read of the new version");
    assert_eq!(
        &got[..],
        &second[110..210],
        "replaced_mid_read: bytes of v2"
    );
    clear(f).await;
}

/// Garbage cursors and page tokens are typed errors.
pub async fn invalid_tokens_are_typed_errors(f: &dyn ConnectorFixture) {
    let err = f
        .connector()
        .changes(Some("not a cursor"))
        .await
        .expect_err("cursor");
    assert!(
        matches!(err, ConnectorError::InvalidCursor { .. }),
        "invalid cursor: {err:?}"
    );
    let mut req = ListRequest::with_page_size(2);
    req.page_token = Some("\u{0}garbage".into());
    let err = f.connector().list(req).await.expect_err("token");
    assert!(
        matches!(err, ConnectorError::InvalidPageToken { .. }),
        "invalid token: {err:?}"
    );
}
