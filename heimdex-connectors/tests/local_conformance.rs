//! The local connector runs the Connector conformance suite (one test per scenario:
//! `local_folder::paging_is_complete_and_ordered`, ...), plus local specifics.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use async_trait::async_trait;
use heimdex_connectors::{LocalConnector, RangeReader};
use heimdex_core::Connector;
use heimdex_core::conformance::Fixture;
use heimdex_core::conformance::connector::{ConnectorFixture, fake_mp4};

struct Folder {
    dir: tempfile::TempDir,
    connector: LocalConnector,
}

impl Folder {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let connector = LocalConnector::new(dir.path()).expect("connector");
        Self { dir, connector }
    }
}

#[async_trait]
impl ConnectorFixture for Folder {
    fn connector(&self) -> &dyn Connector {
        &self.connector
    }
    async fn put(&self, key: &str, bytes: &[u8]) {
        let path = self.dir.path().join(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        // Make sure a rewrite changes the version even within one mtime tick.
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, bytes).expect("write");
    }
    async fn delete(&self, key: &str) {
        std::fs::remove_file(self.dir.path().join(key)).expect("delete");
    }
}

async fn folder() -> Fixture<Folder> {
    Fixture::new(Folder::new())
}

mod local_folder {
    use super::*;
    heimdex_core::connector_conformance_tests!(folder);
}

#[tokio::test]
async fn dot_entries_are_skipped_and_single_file_sources_expose_one_key() {
    let f = Folder::new();
    f.put(".heimdex/thumbs/x.mp4", &fake_mp4(1, 1)).await;
    f.put(".hidden.mp4", &fake_mp4(1, 1)).await;
    f.put("a.mp4", &fake_mp4(1, 1)).await;
    f.put("b.mp4", &fake_mp4(1, 1)).await;
    let all = heimdex_core::connector::list_all(&f.connector, None)
        .await
        .expect("list");
    assert_eq!(
        all.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        vec!["a.mp4", "b.mp4"]
    );

    let single = LocalConnector::single_file(f.dir.path().join("b.mp4")).expect("single");
    let all = heimdex_core::connector::list_all(&single, None)
        .await
        .expect("list");
    assert_eq!(
        all.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        vec!["b.mp4"]
    );
    assert!(
        single.stat("a.mp4").await.is_err(),
        "other keys are not visible"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_reader_reads_and_seeks_by_range() {
    let f = Folder::new();
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let mut data = fake_mp4(0, 0);
    data.extend_from_slice(&body);
    f.put("big.mp4", &data).await;
    let conn: Arc<dyn Connector> = Arc::new(f.connector.clone());
    let size = data.len() as u64;
    let handle = tokio::runtime::Handle::current();
    let expected = data.clone();
    tokio::task::spawn_blocking(move || {
        let mut r = RangeReader::new(conn, "big.mp4", size, 64 * 1024, handle);
        let stats = r.stats();
        // Read the tail only, as a demuxer looking for a trailing index would.
        r.seek(SeekFrom::End(-1000)).expect("seek");
        let mut tail = Vec::new();
        r.read_to_end(&mut tail).expect("tail");
        assert_eq!(tail, expected[expected.len() - 1000..]);
        assert!(
            stats.bytes() <= 64 * 1024,
            "fetched {} bytes for a 1000-byte tail",
            stats.bytes()
        );
        // Then the head, then everything sequentially.
        r.seek(SeekFrom::Start(0)).expect("seek");
        let mut all = Vec::new();
        r.read_to_end(&mut all).expect("all");
        assert_eq!(all, expected);
        assert!(
            stats.request_count() < 30,
            "sequential reads grow blocks: {} requests",
            stats.request_count()
        );
        assert!(r.seek(SeekFrom::Current(-(size as i64) - 1)).is_err());
    })
    .await
    .expect("join");
}
