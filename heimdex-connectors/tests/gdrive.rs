//! The Google Drive connector against a fake Drive v3 server started by each test
//! (`support/fake_drive.rs`): the Connector conformance suite (`fake_drive::…`), then Drive
//! specifics: recursion, scopes, skipped items, shortcuts, duplicate names, the changes feed,
//! ranged reads on a server that ignores `Range`, retries, error mapping, tokens (refresh
//! before expiry and after a 401, the service-account JWT grant), and a `RangeReader` over a
//! real sample video. `real_drive` runs read-only checks against a real Drive (ignored
//! unless configured, see docs/connectors.md).

#![cfg(feature = "gdrive")]

#[path = "support/fake_drive.rs"]
mod fake_drive;

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fake_drive::{Fail, FakeDrive, MY_ROOT};
use heimdex_connectors::gdrive::{Credentials, GDriveConfig, GDriveConnector, RetryPolicy, Scope};
use heimdex_connectors::{ConnectorRegistry, RangeReader, SourceSpec};
use heimdex_core::conformance::Fixture;
use heimdex_core::conformance::connector::{ConnectorFixture, fake_mp4};
use heimdex_core::connector::{Change, ListRequest, list_all};
use heimdex_core::media::MediaKind;
use heimdex_core::{Connector, ConnectorError};

const TEST_KEY: &str = include_str!("fixtures/gdrive-test-key.pem");

fn fast_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(20),
    }
}

fn service_account_json(drive: &FakeDrive, email: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "project_id": "heimdex-test",
        "private_key_id": "test-key-1",
        "private_key": TEST_KEY,
        "client_email": email,
        "client_id": "1234567890",
        "token_uri": drive.token_uri(),
    })
    .to_string()
}

fn service_account(drive: &FakeDrive) -> Credentials {
    Credentials::from_json(&service_account_json(drive, fake_drive::SA_EMAIL), None)
        .expect("credentials")
}

fn refresh_token() -> Credentials {
    Credentials::RefreshToken {
        client_id: fake_drive::CLIENT_ID.into(),
        client_secret: fake_drive::CLIENT_SECRET.into(),
        refresh_token: fake_drive::REFRESH_TOKEN.into(),
    }
}

fn connector(drive: &FakeDrive, scope: Scope, credentials: Credentials) -> GDriveConnector {
    let config = GDriveConfig::new(scope, credentials)
        .with_endpoint(&drive.url)
        .with_token_uri(drive.token_uri())
        .with_retry(fast_retry(4));
    GDriveConnector::new(config).expect("connector")
}

fn keys(objects: &[heimdex_core::ObjectMeta]) -> Vec<&str> {
    objects.iter().map(|o| o.key.as_str()).collect()
}

fn summary(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|ch| match ch {
            Change::New(m) => format!("new {}", m.key),
            Change::Modified(m) => format!("modified {}", m.key),
            Change::Deleted { key } => format!("deleted {key}"),
        })
        .collect()
}

// --- the conformance suite --------------------------------------------------------------

struct DriveFolder {
    drive: FakeDrive,
    root: String,
    connector: GDriveConnector,
}

#[async_trait]
impl ConnectorFixture for DriveFolder {
    fn connector(&self) -> &dyn Connector {
        &self.connector
    }
    async fn put(&self, key: &str, bytes: &[u8]) {
        self.drive.put_path(&self.root, key, bytes);
    }
    async fn delete(&self, key: &str) {
        let id = self
            .drive
            .id_at(&self.root, key)
            .expect("delete: no such key");
        self.drive.trash(&id);
    }
    fn lists_by_content(&self) -> bool {
        false
    }
}

async fn drive_folder() -> Fixture<DriveFolder> {
    let drive = FakeDrive::start().await;
    let root = drive.folder(MY_ROOT, "heimdex-conformance");
    // Something outside the source that must never show up.
    drive.upload(MY_ROOT, "outside.mp4", &fake_mp4(10, 1));
    let connector = connector(&drive, Scope::Folder(root.clone()), service_account(&drive));
    Fixture::new(DriveFolder {
        drive,
        root,
        connector,
    })
}

mod fake_drive_conformance {
    use super::*;
    heimdex_core::connector_conformance_tests!(drive_folder);
}

// --- listing ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_recursively_skipping_trash_docs_and_non_videos_and_resolves_shortcuts() {
    let d = FakeDrive::start().await;
    let root = d.folder(MY_ROOT, "Archive");
    let a = d.folder(&root, "a");
    let b = d.folder(&a, "b");
    let c = d.folder(&b, "c");
    d.upload(&root, "top.mp4", &fake_mp4(10, 1));
    d.upload(&a, "one.MOV", &fake_mp4(11, 1));
    d.upload(&c, "deep.mkv", &fake_mp4(12, 1));
    // Declared video without a video name: listed; a video name on a text file: listed.
    d.add(&b, "raw_capture", "video/mp4", fake_mp4(13, 1));
    d.add(&b, "notes.mp4", "text/plain", b"not a video".to_vec());
    // Skipped: non-video, trashed, Google documents (even when named like a video).
    d.upload(&root, "readme.txt", b"hello");
    let trashed = d.upload(&a, "old.mp4", &fake_mp4(14, 1));
    d.trash(&trashed);
    d.add(&a, "script.mp4", fake_drive::GDOC, vec![]);
    let trashed_dir = d.folder(&root, "bin");
    d.upload(&trashed_dir, "in-trashed-folder.mp4", &fake_mp4(1, 1));
    d.trash(&trashed_dir);
    // A shortcut to a video outside the source: listed under its own name, target's bytes.
    let elsewhere = d.folder(MY_ROOT, "Elsewhere");
    let target_bytes = fake_mp4(500, 7);
    let target = d.upload(&elsewhere, "master.mp4", &target_bytes);
    d.shortcut(&a, "link to master.mp4", &target);
    // A shortcut to a folder is not followed.
    d.shortcut(&root, "elsewhere-link", &elsewhere);
    // Two files of one name in a folder: the smaller id keeps the name.
    let first = d.upload(&root, "dup.mp4", &fake_mp4(20, 1));
    let second = d.upload(&root, "dup.mp4", &fake_mp4(21, 2));
    assert!(first < second);

    let conn = connector(&d, Scope::Folder(root.clone()), refresh_token());
    let all = list_all(&conn, None).await.expect("list");
    let dup2 = format!("dup ({second}).mp4");
    let mut expected = vec![
        "a/b/c/deep.mkv",
        "a/b/notes.mp4",
        "a/b/raw_capture",
        "a/link to master.mp4",
        "a/one.MOV",
        "dup.mp4",
        dup2.as_str(),
        "top.mp4",
    ];
    expected.sort();
    assert_eq!(keys(&all), expected);
    assert!(
        all.iter()
            .all(|o| o.media == MediaKind::UnknownWithVideoExtension)
    );

    // stat == listing, for every key (also the suffixed duplicate and the shortcut).
    for o in &all {
        assert_eq!(&conn.stat(&o.key).await.expect("stat"), o, "{}", o.key);
    }
    let link = all
        .iter()
        .find(|o| o.key == "a/link to master.mp4")
        .unwrap();
    assert_eq!(link.size, target_bytes.len() as u64);
    let got = conn
        .read_range("a/link to master.mp4", 5..50)
        .await
        .expect("read via shortcut");
    assert_eq!(&got[..], &target_bytes[5..50]);
    let got = conn.read_range(&dup2, 0..30).await.expect("read dup");
    assert_eq!(&got[..], &fake_mp4(21, 2)[..30]);

    // A fresh connector (no index) resolves keys by path, suffixed ones too.
    let fresh = connector(&d, Scope::Folder(root.clone()), refresh_token());
    for o in &all {
        assert_eq!(
            &fresh.stat(&o.key).await.expect("stat by path"),
            o,
            "{}",
            o.key
        );
    }
    assert!(matches!(
        fresh.stat("a/old.mp4").await,
        Err(ConnectorError::NotFound { .. })
    ));
    assert!(matches!(
        fresh.stat("a/script.mp4").await,
        Err(ConnectorError::NotFound { .. })
    ));

    // A prefix only walks the folders that can match it.
    d.reset_counts();
    let under_b = list_all(&conn, Some("a/b/".into())).await.expect("prefix");
    assert_eq!(
        keys(&under_b),
        ["a/b/c/deep.mkv", "a/b/notes.mp4", "a/b/raw_capture"]
    );
    assert_eq!(d.counts().list, 4, "root, a, a/b, a/b/c: {:?}", d.counts());

    // Renamed, then moved: the index notices, the old key is gone, the new one resolves.
    let one = d.id_at(&root, "a/one.MOV").expect("one");
    d.rename(&one, "uno.MOV");
    assert!(matches!(
        conn.stat("a/one.MOV").await,
        Err(ConnectorError::NotFound { .. })
    ));
    assert!(matches!(
        conn.read_range("a/one.MOV", 0..4).await,
        Err(ConnectorError::NotFound { .. })
    ));
    assert_eq!(
        conn.stat("a/uno.MOV").await.expect("renamed").size,
        fake_mp4(11, 1).len() as u64
    );
    d.move_to(&one, &b);
    assert!(matches!(
        conn.stat("a/uno.MOV").await,
        Err(ConnectorError::NotFound { .. })
    ));
    let got = conn.read_range("a/b/uno.MOV", 0..8).await.expect("moved");
    assert_eq!(&got[..], &fake_mp4(11, 1)[..8]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_drive_and_my_drive_scopes() {
    let d = FakeDrive::start().await;
    let team = d.shared_drive("Team");
    let proj = d.folder(&team, "project");
    d.upload(&team, "kickoff.mp4", &fake_mp4(10, 1));
    d.upload(&proj, "take1.mov", &fake_mp4(10, 2));
    d.upload(MY_ROOT, "mine.mp4", &fake_mp4(10, 3));
    let personal = d.folder(MY_ROOT, "personal");
    d.upload(&personal, "holiday.webm", &fake_mp4(10, 4));

    let shared = connector(&d, Scope::SharedDrive(team.clone()), service_account(&d));
    let all = list_all(&shared, None).await.expect("shared drive");
    assert_eq!(keys(&all), ["kickoff.mp4", "project/take1.mov"]);
    let got = shared
        .read_range("project/take1.mov", 0..8)
        .await
        .expect("read");
    assert_eq!(&got[..], &fake_mp4(10, 2)[..8]);

    // A folder inside the shared drive lists in that drive.
    let folder = connector(&d, Scope::Folder(proj.clone()), service_account(&d));
    assert_eq!(
        keys(&list_all(&folder, None).await.expect("folder")),
        ["take1.mov"]
    );

    let mine = connector(&d, Scope::MyDrive, service_account(&d));
    let all = list_all(&mine, None).await.expect("my drive");
    assert_eq!(keys(&all), ["mine.mp4", "personal/holiday.webm"]);

    // The shared drive's changes feed sees its own changes only.
    let first = shared.changes(None).await.expect("first");
    assert_eq!(first.changes.len(), 2);
    d.upload(MY_ROOT, "elsewhere.mp4", &fake_mp4(1, 1));
    d.upload(&proj, "take2.mov", &fake_mp4(1, 1));
    let delta = shared.changes(Some(&first.cursor)).await.expect("delta");
    assert_eq!(summary(&delta.changes), ["new project/take2.mov"]);

    // URIs through the registry.
    let registry = ConnectorRegistry::default();
    for uri in [
        format!("gdrive://shared-drive/{team}"),
        "gdrive://my-drive".to_owned(),
        format!("gdrive://folder/{proj}"),
    ] {
        let spec = SourceSpec::parse(&uri)
            .expect("parse")
            .with_option("endpoint", &d.url)
            .with_option("access_token", d.issue_token(Duration::from_secs(600)));
        assert_eq!(spec.kind(), "gdrive");
        assert_eq!(spec.uri(), uri);
        let c = registry.build(&spec).expect("build");
        assert_eq!(c.name(), "gdrive");
        assert!(!list_all(c.as_ref(), None).await.expect("list").is_empty());
    }
    assert!(SourceSpec::parse("gdrive://folder").is_ok());
    let bad = SourceSpec::parse("gdrive://folder")
        .unwrap()
        .with_option("access_token", "x");
    assert!(registry.build(&bad).is_err(), "a folder needs an id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_tokens_resume_in_another_connector() {
    let d = FakeDrive::start().await;
    let root = d.folder(MY_ROOT, "Source");
    let sub = d.folder(&root, "sub");
    for i in 0..4 {
        d.upload(&root, &format!("r{i}.mp4"), &fake_mp4(1, 1));
        d.upload(&sub, &format!("s{i}.mp4"), &fake_mp4(1, 1));
    }
    let a = connector(&d, Scope::Folder(root.clone()), refresh_token());
    let first = a
        .list(ListRequest::with_page_size(3))
        .await
        .expect("page 1");
    assert_eq!(keys(&first.objects), ["r0.mp4", "r1.mp4", "r2.mp4"]);
    // Another connector (another process) has no snapshot: it walks again and resumes
    // after the token's key.
    let b = connector(&d, Scope::Folder(root), refresh_token());
    let mut req = ListRequest::with_page_size(100);
    req.page_token = first.next_page_token.clone();
    d.reset_counts();
    let rest = b.list(req).await.expect("page 2 elsewhere");
    assert_eq!(
        keys(&rest.objects),
        [
            "r3.mp4",
            "sub/s0.mp4",
            "sub/s1.mp4",
            "sub/s2.mp4",
            "sub/s3.mp4"
        ]
    );
    assert!(rest.next_page_token.is_none());
    assert!(d.counts().list >= 2, "walked again: {:?}", d.counts());
    // In the first connector, the next page costs no request.
    let mut req = ListRequest::with_page_size(3);
    req.page_token = first.next_page_token;
    d.reset_counts();
    let second = a.list(req).await.expect("page 2");
    assert_eq!(
        keys(&second.objects),
        ["r3.mp4", "sub/s0.mp4", "sub/s1.mp4"]
    );
    assert_eq!(d.counts().drive_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_quotes_and_backslashes_resolve_by_path() {
    let d = FakeDrive::start().await;
    let root = d.folder(MY_ROOT, "Source");
    let odd_dir = d.folder(&root, "it's \\ here");
    let name = "say \"cheese\" it's.mp4";
    d.upload(&odd_dir, name, &fake_mp4(3, 3));
    let key = format!("it's \\ here/{name}");
    let listed = connector(&d, Scope::Folder(root.clone()), refresh_token());
    assert_eq!(
        keys(&list_all(&listed, None).await.expect("list")),
        [key.as_str()]
    );
    // A fresh connector resolves the key with `name = '…'` queries (escaped).
    let fresh = connector(&d, Scope::Folder(root), refresh_token());
    assert_eq!(
        fresh.stat(&key).await.expect("stat").size,
        fake_mp4(3, 3).len() as u64
    );
}

// --- changes ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_feed_reports_each_change_once_in_key_order() {
    let d = FakeDrive::start().await;
    let root = d.folder(MY_ROOT, "Source");
    let sub = d.folder(&root, "sub");
    let outside = d.folder(MY_ROOT, "Outside");
    let keep = d.upload(&root, "keep.mp4", &fake_mp4(10, 1));
    let edit = d.upload(&sub, "edit.mp4", &fake_mp4(10, 1));
    let trash = d.upload(&root, "trash.mp4", &fake_mp4(10, 1));
    let purge = d.upload(&sub, "purge.mp4", &fake_mp4(10, 1));
    let leave = d.upload(&root, "leave.mp4", &fake_mp4(10, 1));
    let arrive = d.upload(&outside, "arrive.mp4", &fake_mp4(10, 1));
    let rename = d.upload(&root, "before.mp4", &fake_mp4(10, 1));
    let conn = connector(&d, Scope::Folder(root.clone()), refresh_token());

    let first = conn.changes(None).await.expect("first");
    assert_eq!(
        summary(&first.changes),
        [
            "new before.mp4",
            "new keep.mp4",
            "new leave.mp4",
            "new sub/edit.mp4",
            "new sub/purge.mp4",
            "new trash.mp4",
        ]
    );

    // Nothing changed: one changes.list request, nothing reported.
    d.reset_counts();
    let quiet = conn.changes(Some(&first.cursor)).await.expect("quiet");
    assert!(quiet.changes.is_empty(), "{:?}", quiet.changes);
    assert_eq!(d.counts().drive_requests, 1, "{:?}", d.counts());

    // Changes outside the source are not reported.
    d.upload(&outside, "unrelated.mp4", &fake_mp4(1, 1));
    let unrelated = conn.changes(Some(&quiet.cursor)).await.expect("unrelated");
    assert!(unrelated.changes.is_empty(), "{:?}", unrelated.changes);

    d.update_content(&edit, &fake_mp4(99, 2));
    d.update_content(&edit, &fake_mp4(98, 3)); // twice: still one change
    d.trash(&trash);
    d.delete(&purge);
    d.move_to(&leave, &outside);
    d.move_to(&arrive, &sub);
    d.rename(&rename, "after.mp4");
    d.upload(&sub, "fresh.mp4", &fake_mp4(5, 5));
    d.modify(&keep, |_| {}); // metadata only: same bytes, same version
    d.reset_counts();
    let delta = conn.changes(Some(&unrelated.cursor)).await.expect("delta");
    assert_eq!(
        summary(&delta.changes),
        [
            "new after.mp4",
            "deleted before.mp4",
            "deleted leave.mp4",
            "new sub/arrive.mp4",
            "modified sub/edit.mp4",
            "new sub/fresh.mp4",
            "deleted sub/purge.mp4",
            "deleted trash.mp4",
        ]
    );
    // Incremental: the changes page, no listing.
    assert_eq!(d.counts().list, 0, "{:?}", d.counts());
    eprintln!(
        "9 file changes synced with {} requests ({} changes.list, {} files.get)",
        d.counts().drive_requests,
        d.counts().changes,
        d.counts().get
    );
    let modified = delta
        .changes
        .iter()
        .find_map(|c| match c {
            Change::Modified(m) => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(modified.size, fake_mp4(98, 3).len() as u64);
    assert_eq!(conn.stat("sub/edit.mp4").await.expect("stat"), modified);

    let after = conn.changes(Some(&delta.cursor)).await.expect("after");
    assert!(after.changes.is_empty(), "{:?}", after.changes);

    // Folder changes fall back to a full walk, still reporting each change once: a folder
    // moved in with content, a folder renamed, a folder trashed.
    let incoming = d.folder(&outside, "incoming");
    d.upload(&incoming, "x.mp4", &fake_mp4(1, 1));
    let after = conn
        .changes(Some(&after.cursor))
        .await
        .expect("outside folder");
    assert!(after.changes.is_empty(), "{:?}", after.changes);
    d.move_to(&incoming, &root);
    d.rename(&sub, "renamed");
    let folders = conn.changes(Some(&after.cursor)).await.expect("folders");
    assert_eq!(
        summary(&folders.changes),
        [
            "new incoming/x.mp4",
            "new renamed/arrive.mp4",
            "new renamed/edit.mp4",
            "new renamed/fresh.mp4",
            "deleted sub/arrive.mp4",
            "deleted sub/edit.mp4",
            "deleted sub/fresh.mp4",
        ]
    );
    d.trash(&incoming);
    let gone = conn
        .changes(Some(&folders.cursor))
        .await
        .expect("trashed folder");
    assert_eq!(summary(&gone.changes), ["deleted incoming/x.mp4"]);
    // A new file in a folder created after the cursor (folder and file in one batch).
    let new_dir = d.folder(&root, "new-dir");
    d.upload(&new_dir, "inside.mp4", &fake_mp4(1, 1));
    let created = conn.changes(Some(&gone.cursor)).await.expect("new dir");
    assert_eq!(summary(&created.changes), ["new new-dir/inside.mp4"]);
    let end = conn.changes(Some(&created.cursor)).await.expect("end");
    assert!(end.changes.is_empty(), "{:?}", end.changes);

    // Cursors are typed: garbage, another source's cursor.
    for bad in ["", "{}", "not a cursor", r#"{"v":1,"objects":{}}"#] {
        assert!(
            matches!(
                conn.changes(Some(bad)).await,
                Err(ConnectorError::InvalidCursor { .. })
            ),
            "{bad:?}"
        );
    }
    let other = connector(&d, Scope::Folder(outside.clone()), refresh_token());
    assert!(matches!(
        other.changes(Some(&end.cursor)).await,
        Err(ConnectorError::InvalidCursor { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_feed_pages_and_shortcut_targets() {
    let d = FakeDrive::start().await;
    let root = d.folder(MY_ROOT, "Source");
    let elsewhere = d.folder(MY_ROOT, "Elsewhere");
    let target = d.upload(&elsewhere, "master.mp4", &fake_mp4(10, 1));
    d.shortcut(&root, "link.mp4", &target);
    let config = GDriveConfig::new(Scope::Folder(root.clone()), refresh_token())
        .with_endpoint(&d.url)
        .with_token_uri(d.token_uri())
        .with_retry(fast_retry(3))
        .with_page_size(2);
    let conn = GDriveConnector::new(config).expect("connector");
    let first = conn.changes(None).await.expect("first");
    assert_eq!(summary(&first.changes), ["new link.mp4"]);
    for i in 0..5 {
        d.upload(&root, &format!("n{i}.mp4"), &fake_mp4(i, 1));
    }
    d.update_content(&target, &fake_mp4(20, 2));
    d.reset_counts();
    let delta = conn.changes(Some(&first.cursor)).await.expect("delta");
    assert_eq!(
        summary(&delta.changes),
        [
            "modified link.mp4",
            "new n0.mp4",
            "new n1.mp4",
            "new n2.mp4",
            "new n3.mp4",
            "new n4.mp4",
        ]
    );
    assert_eq!(d.counts().changes, 3, "6 changes in pages of 2");
    d.delete(&target);
    let gone = conn
        .changes(Some(&delta.cursor))
        .await
        .expect("target gone");
    assert_eq!(summary(&gone.changes), ["deleted link.mp4"]);
}

// --- reading ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_ignoring_server_yields_exact_bytes_and_stops_early() {
    let d = FakeDrive::start().await;
    let root = d.folder(MY_ROOT, "Source");
    let body: Vec<u8> = (0..8_000_000u32).map(|i| (i % 251) as u8).collect();
    d.upload(&root, "big.mp4", &body);
    let conn = connector(&d, Scope::Folder(root), refresh_token());
    list_all(&conn, None).await.expect("list");

    let stats = conn.stats();
    let before = stats.media_bytes();
    let got = conn
        .read_range("big.mp4", 1000..3000)
        .await
        .expect("ranged");
    assert_eq!(&got[..], &body[1000..3000]);
    assert_eq!(
        stats.media_bytes() - before,
        2000,
        "a Range-honouring server"
    );

    d.set_ignore_range(true);
    for range in [
        0..100u64,
        1000..3000,
        100_000..100_001,
        7_999_990..8_000_100,
    ] {
        let before = stats.media_bytes();
        let got = conn
            .read_range("big.mp4", range.clone())
            .await
            .expect("range ignored");
        let end = range.end.min(body.len() as u64);
        assert_eq!(
            &got[..],
            &body[range.start as usize..end as usize],
            "{range:?}"
        );
        let fetched = stats.media_bytes() - before;
        eprintln!("Range-ignoring server: {range:?} of an 8 MB file fetched {fetched} bytes");
        if range.end < 1_000_000 {
            assert!(
                fetched < range.end + 1_000_000,
                "stopped reading after the range: {fetched} bytes for {range:?}"
            );
        }
    }
    assert!(matches!(
        conn.read_range("big.mp4", 8_000_000..8_000_001).await,
        Err(ConnectorError::RangeOutOfBounds {
            size: 8_000_000,
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_reader_over_a_real_sample_equals_the_file() {
    let dir = std::env::var("HEIMDEX_SAMPLES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples"));
    let path = dir.join("bikes.mp4");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `make samples`)", path.display()));
    let d = FakeDrive::start().await;
    let root = d.folder(MY_ROOT, "Samples");
    d.upload(&root, "bikes.mp4", &bytes);
    let conn: Arc<dyn Connector> =
        Arc::new(connector(&d, Scope::Folder(root), service_account(&d)));
    let meta = conn.stat("bikes.mp4").await.expect("stat");
    assert_eq!(meta.size, bytes.len() as u64);
    let handle = tokio::runtime::Handle::current();
    let read = tokio::task::spawn_blocking(move || {
        let mut r = RangeReader::new(conn, "bikes.mp4", meta.size, 64 * 1024, handle)
            .with_version(meta.version);
        let stats = r.stats();
        let mut all = Vec::new();
        r.read_to_end(&mut all).expect("read");
        (all, stats.request_count(), stats.bytes())
    })
    .await
    .expect("join");
    assert_eq!(read.0, bytes);
    eprintln!(
        "RangeReader over Drive: {} bytes in {} ranged reads",
        read.2, read.1
    );
}

// --- retries, errors, auth --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried_then_unavailable() {
    let d = FakeDrive::start().await;
    let root = d.folder(MY_ROOT, "Source");
    d.upload(&root, "a.mp4", &fake_mp4(100, 1));
    let conn = connector(&d, Scope::Folder(root), refresh_token());
    list_all(&conn, None).await.expect("list");
    for fail in [
        Fail::TooManyRequests,
        Fail::RateLimit403,
        Fail::UserRateLimit403,
        Fail::Server500,
        Fail::Unavailable503,
    ] {
        d.fail_next(3, fail);
        let retries = conn.stats().retries();
        let m = conn
            .stat("a.mp4")
            .await
            .expect("succeeds on the 4th attempt");
        assert_eq!(m.key, "a.mp4");
        assert_eq!(conn.stats().retries() - retries, 3, "{fail:?}");
        d.fail_next(3, fail);
        let got = conn.read_range("a.mp4", 0..10).await.expect("read retried");
        assert_eq!(got.len(), 10);
    }
    for fail in [Fail::TooManyRequests, Fail::RateLimit403, Fail::Server500] {
        d.fail_next(4, fail);
        let err = conn
            .stat("a.mp4")
            .await
            .expect_err("4 failures exhaust 4 attempts");
        assert!(
            matches!(err, ConnectorError::Unavailable { .. }),
            "{fail:?}: {err:?}"
        );
        assert_eq!(err.kind(), heimdex_core::ErrorKind::Unavailable);
    }
    d.fail_next(4, Fail::Server500);
    assert!(matches!(
        list_all(&conn, None).await,
        Err(ConnectorError::Unavailable { .. })
    ));
    d.fail_next(4, Fail::TooManyRequests);
    assert!(matches!(
        conn.changes(None).await,
        Err(ConnectorError::Unavailable { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_and_permission_denied() {
    let d = FakeDrive::start().await;
    let root = d.folder(MY_ROOT, "Source");
    let id = d.upload(&root, "a.mp4", &fake_mp4(100, 1));
    let conn = connector(&d, Scope::Folder(root.clone()), refresh_token());
    list_all(&conn, None).await.expect("list");
    d.reset_counts();

    d.fail_next(1, Fail::Forbidden403);
    let err = conn.stat("a.mp4").await.expect_err("403");
    assert!(
        matches!(err, ConnectorError::PermissionDenied { .. }),
        "{err:?}"
    );
    d.fail_next(1, Fail::Forbidden403);
    let err = conn.read_range("a.mp4", 0..1).await.expect_err("403");
    assert!(
        matches!(err, ConnectorError::PermissionDenied { .. }),
        "{err:?}"
    );
    assert_eq!(d.counts().drive_requests, 2, "403 is not retried");

    // 404: a listed file deleted behind the connector's back.
    d.delete(&id);
    assert!(matches!(
        conn.stat("a.mp4").await,
        Err(ConnectorError::NotFound { .. })
    ));
    assert!(matches!(
        conn.read_range("a.mp4", 0..1).await,
        Err(ConnectorError::NotFound { .. })
    ));
    // A source folder that does not exist.
    let missing = connector(&d, Scope::Folder("1NoSuchFolder".into()), refresh_token());
    assert!(matches!(
        missing.list(ListRequest::default()).await,
        Err(ConnectorError::NotFound { .. })
    ));
    // Bad OAuth client: the token endpoint refuses.
    let bad = connector(
        &d,
        Scope::Folder(root),
        Credentials::RefreshToken {
            client_id: fake_drive::CLIENT_ID.into(),
            client_secret: "wrong".into(),
            refresh_token: fake_drive::REFRESH_TOKEN.into(),
        },
    );
    assert!(matches!(
        bad.list(ListRequest::default()).await,
        Err(ConnectorError::PermissionDenied { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_cached_refreshed_before_expiry_and_after_a_401() {
    let d = FakeDrive::start().await;
    let root = d.folder(MY_ROOT, "Source");
    d.upload(&root, "a.mp4", &fake_mp4(100, 1));
    // Tokens live 62 s: the connector refreshes them 60 s early, i.e. after 2 s.
    d.set_token_ttl(62);
    let conn = connector(&d, Scope::Folder(root.clone()), refresh_token());
    list_all(&conn, None).await.expect("list");
    conn.stat("a.mp4").await.expect("stat");
    assert_eq!(d.counts().refresh_grants, 1, "cached: {:?}", d.counts());
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    conn.stat("a.mp4").await.expect("stat");
    assert_eq!(d.counts().refresh_grants, 2, "refreshed before expiry");
    assert_eq!(d.counts().unauthorized, 0, "never sent an expired token");

    // The server forgets every token: one 401, one refresh, the request succeeds.
    d.set_token_ttl(3600);
    d.revoke_tokens();
    conn.stat("a.mp4").await.expect("stat after 401");
    let c = d.counts();
    assert_eq!((c.unauthorized, c.refresh_grants), (1, 3), "{c:?}");

    // A 401 again after the refresh: PermissionDenied, no loop.
    d.fail_next(2, Fail::Unauthorized401);
    assert!(matches!(
        conn.stat("a.mp4").await,
        Err(ConnectorError::PermissionDenied { .. })
    ));
    assert_eq!(d.counts().refresh_grants, 4);

    // A given access token cannot be refreshed: 401 is PermissionDenied.
    let token = d.issue_token(Duration::from_secs(600));
    let fixed = connector(&d, Scope::Folder(root), Credentials::AccessToken(token));
    fixed.stat("a.mp4").await.expect("stat with a given token");
    d.revoke_tokens();
    assert!(matches!(
        fixed.stat("a.mp4").await,
        Err(ConnectorError::PermissionDenied { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_jwt_grant_with_delegation_and_from_options() {
    let d = FakeDrive::start().await;
    let root = d.folder(MY_ROOT, "Source");
    d.upload(&root, "a.mp4", &fake_mp4(100, 1));
    let tmp = tempfile::tempdir().expect("tmp");
    let key_file = tmp.path().join("sa.json");
    std::fs::write(&key_file, service_account_json(&d, fake_drive::SA_EMAIL)).expect("write");

    // From source options: the key file's token_uri is the fake's.
    let spec = SourceSpec::parse(&format!("gdrive://folder/{root}"))
        .expect("parse")
        .with_option("endpoint", &d.url)
        .with_option("credentials_file", key_file.to_str().unwrap())
        .with_option("subject", "editor@example.com")
        .with_option("retry_base_ms", "1");
    let conn = ConnectorRegistry::default().build(&spec).expect("build");
    assert_eq!(
        keys(&list_all(conn.as_ref(), None).await.expect("list")),
        ["a.mp4"]
    );
    assert_eq!(d.counts().jwt_grants, 1);
    assert_eq!(d.last_subject().as_deref(), Some("editor@example.com"));

    // The fake verifies the RS256 signature and the claims: another issuer is refused.
    let wrong = Credentials::from_json(
        &service_account_json(&d, "intruder@elsewhere.iam.gserviceaccount.com"),
        None,
    )
    .expect("credentials");
    let conn = connector(&d, Scope::Folder(root.clone()), wrong);
    assert!(matches!(
        conn.stat("a.mp4").await,
        Err(ConnectorError::PermissionDenied { .. })
    ));
    // A corrupt key is a typed error too.
    let broken = serde_json::json!({
        "type": "service_account",
        "client_email": fake_drive::SA_EMAIL,
        "private_key": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
    })
    .to_string();
    let conn = connector(
        &d,
        Scope::Folder(root),
        Credentials::from_json(&broken, None).expect("parses"),
    );
    assert!(matches!(
        conn.stat("a.mp4").await,
        Err(ConnectorError::PermissionDenied { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_sync_and_listing_cost() {
    // Measurements: requests per listing and per sync of N unchanged files.
    let d = FakeDrive::start().await;
    let root = d.folder(MY_ROOT, "Source");
    let mut folders = vec![root.clone()];
    for i in 0..9 {
        folders.push(d.folder(&root, &format!("f{i}")));
    }
    let n = 2_000;
    for i in 0..n {
        d.upload(
            &folders[i % folders.len()],
            &format!("clip{i:05}.mp4"),
            &fake_mp4(1, 1),
        );
    }
    let conn = connector(&d, Scope::Folder(root.clone()), refresh_token());
    d.reset_counts();
    let first = conn.changes(None).await.expect("first");
    assert_eq!(first.changes.len(), n);
    let initial = d.counts().drive_requests;
    d.reset_counts();
    let again = conn.changes(Some(&first.cursor)).await.expect("again");
    assert!(again.changes.is_empty());
    let unchanged = d.counts().drive_requests;
    assert_eq!(unchanged, 1);
    d.reset_counts();
    let mut seen = BTreeSet::new();
    let mut token = None;
    loop {
        let mut req = ListRequest::with_page_size(500);
        req.page_token = token.take();
        let page = conn.list(req).await.expect("page");
        seen.extend(page.objects.into_iter().map(|o| o.key));
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen.len(), n);
    let listing = d.counts().drive_requests;
    eprintln!(
        "{n} files in 10 folders: first sync {initial} requests, unchanged sync {unchanged}, \
         listing in pages of 500: {listing} requests; cursor {} bytes",
        first.cursor.len()
    );
    assert!(listing <= 12, "one walk for all pages: {listing}");
}

/// Read-only checks against a real Drive folder (see docs/connectors.md): set
/// `HEIMDEX_GDRIVE_TEST_FOLDER` to a folder id holding at least one video, and credentials
/// (`HEIMDEX_GDRIVE_TOKEN` or `GOOGLE_APPLICATION_CREDENTIALS`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real Google Drive: set HEIMDEX_GDRIVE_TEST_FOLDER and credentials"]
async fn real_drive() {
    let folder = std::env::var("HEIMDEX_GDRIVE_TEST_FOLDER").expect("HEIMDEX_GDRIVE_TEST_FOLDER");
    let spec = SourceSpec::parse(&format!("gdrive://folder/{folder}")).expect("parse");
    let conn = GDriveConnector::from_spec(&spec).expect("credentials from the environment");
    let all = list_all(&conn, None).await.expect("list");
    assert!(!all.is_empty(), "the test folder holds no video");
    let mut sorted = keys(&all);
    sorted.sort();
    assert_eq!(sorted, keys(&all), "key order");
    for o in all.iter().take(5) {
        assert_eq!(&conn.stat(&o.key).await.expect("stat"), o);
        let n = o.size.min(4096);
        if n > 0 {
            let head = conn.read_range(&o.key, 0..n).await.expect("read");
            assert_eq!(head.len() as u64, n);
            let checked = conn
                .read_range_checked(&o.key, 0..n, &o.version)
                .await
                .expect("checked read");
            assert_eq!(checked, head);
        }
    }
    let first = conn.changes(None).await.expect("changes");
    assert_eq!(first.changes.len(), all.len());
    let again = conn.changes(Some(&first.cursor)).await.expect("again");
    assert!(
        again.changes.is_empty(),
        "changed while testing? {:?}",
        again.changes
    );
}
