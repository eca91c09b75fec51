//! Hostile bytes (issue 26): every parser of state and of network input fed corrupted input
//! (truncations of a valid example, random bytes, valid JSON of the wrong shape, huge numbers,
//! duplicate keys) answers with a typed error that names the object, and never panics.

use bytes::Bytes;
use proptest::prelude::*;

use crate::lake::layout;
use crate::lake::manifest::{Manifest, ManifestError};
use crate::lake::storage::{temp_lake, Lake};
use crate::plan::window::Window;

const WINDOW: Window = Window {
    start: 1_709_251_200,
    end: 1_709_254_800,
};

/// A valid example of each state file, to cut short.
fn examples() -> Vec<(&'static str, Vec<u8>)> {
    let marker = br#"{"window":"20240301T0000Z","generation":2,"start":"2024-03-01T00:00:00Z","end":"2024-03-01T01:00:00Z","rows":1,"bytes":10,"files":[{"path":"audit_logs/subdomain=acme/created_date=2024-03-01/part-20240301T0000Z-g2-0.parquet","rows":1,"bytes":10,"sha256":"00"}],"completed_at":"2024-03-01T02:00:00Z","auditlake_version":"0.1.0","run_id":"r"}"#;
    let journal = br#"{"window":"20240301T0000Z","from_generation":1,"to_generation":2,"reason":"repair","started_at":"2024-03-01T02:00:00Z","data_change":true}"#;
    let dataset = br#"{"format":1,"subdomain":"acme","schema_version":2,"window":"1h","filters":{},"created_by":"auditlake","table_format":"delta"}"#;
    let open = br#"{"window":"20240301T0000Z","start":"2024-03-01T00:00:00Z","end":"2024-03-01T00:30:00Z","rows":0,"bytes":0,"files":[],"completed_at":"2024-03-01T00:31:00Z","auditlake_version":"0.1.0","covered_to":"2024-03-01T00:30:00Z","earlier":[]}"#;
    let link = br#"{"seq":1,"window":"20240301T0000Z","generation":1,"files":[],"previous":null,"at":"2024-03-01T00:00:00Z","run_id":"r"}"#;
    let page = br#"{"audit_logs":[{"id":1,"created_at":"2024-03-01T00:00:00Z","action":"login"}],"meta":{"has_more":false,"after_cursor":null},"links":{"next":null},"count":1}"#;
    vec![
        ("marker", marker.to_vec()),
        ("journal", journal.to_vec()),
        ("dataset", dataset.to_vec()),
        ("open", open.to_vec()),
        ("link", link.to_vec()),
        ("page", page.to_vec()),
    ]
}

/// Corrupted input: a truncation of an example, random bytes, JSON of another shape, huge
/// numbers, a duplicate key.
fn hostile() -> impl Strategy<Value = (usize, Vec<u8>)> {
    let n = examples().len();
    prop_oneof![
        (0..n, any::<prop::sample::Index>()).prop_map(|(i, cut)| {
            let bytes = examples()[i].1.clone();
            let keep = cut.index(bytes.len());
            (i, bytes[..keep].to_vec())
        }),
        (0..n, prop::collection::vec(any::<u8>(), 0..200)),
        (
            0..n,
            prop_oneof![
                Just(b"[]".to_vec()),
                Just(b"null".to_vec()),
                Just(b"\"text\"".to_vec()),
                Just(b"{\"window\": 5}".to_vec()),
                Just(b"{\"generation\": 99999999999999999999999}".to_vec()),
                Just(b"{\"rows\": -1}".to_vec()),
                Just(br#"{"seq": 1e400}"#.to_vec()),
            ]
        ),
        (0..n).prop_map(|i| {
            // Every key of the example twice.
            let text = String::from_utf8(examples()[i].1.clone()).unwrap();
            let doubled = text.replacen('{', "{\"window\":\"x\",", 1);
            (i, doubled.into_bytes())
        }),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Reads `bytes` stored as the state file `kind` through its reader: `Ok` only for valid input,
/// a [`ManifestError::Corrupt`] naming the file otherwise.
async fn read_state(lake: &Lake, kind: &str, bytes: Vec<u8>) -> Result<(), String> {
    let manifest = Manifest::new(lake.clone(), "acme");
    let (path, read) = match kind {
        "marker" => {
            let path = layout::marker("acme", &WINDOW, 2);
            lake.write(&path, Bytes::from(bytes)).await.unwrap();
            (path, manifest.marker(&WINDOW, 2).await.map(|_| ()))
        }
        "dataset" => {
            let path = layout::dataset("acme");
            lake.write(&path, Bytes::from(bytes)).await.unwrap();
            (path, manifest.dataset().await.map(|_| ()))
        }
        "open" => {
            let path = layout::open_window("acme");
            lake.write(&path, Bytes::from(bytes)).await.unwrap();
            (path, manifest.open_windows().await.map(|_| ()))
        }
        "journal" => {
            let path = layout::repair_journal("acme", &WINDOW);
            lake.write(&path, Bytes::from(bytes)).await.unwrap();
            // A journal that does not parse is told by the marker instead: never an error.
            return match manifest.journal(&WINDOW).await {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("a journal's read failed: {e}")),
            };
        }
        "link" => {
            return serde_json::from_slice::<crate::lake::chain::Digest>(&bytes)
                .map(|_| ())
                .map_err(|e| e.to_string())
                .or(Ok(()));
        }
        _ => {
            let schema = crate::table::schema::Schema::get();
            let _ = crate::table::decode::decode_page(&bytes, schema, |_| {});
            let _ = crate::zendesk::pagination::parse_cursor_envelope(&bytes);
            let _ = crate::zendesk::pagination::parse_offset_envelope(&bytes);
            return Ok(());
        }
    };
    match read {
        Ok(()) => Ok(()),
        Err(ManifestError::Corrupt {
            path: named,
            reason,
        }) if named == path.to_string() => {
            assert!(!reason.is_empty());
            Err(reason)
        }
        Err(ManifestError::Legacy { .. }) if kind == "dataset" => Err("legacy".into()),
        Err(e) => panic!("{kind}: not a Corrupt error naming {path}: {e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_state_parser_answers_hostile_bytes_with_a_typed_error((kind, bytes) in hostile()) {
        let (_dir, lake) = temp_lake();
        let (name, example) = &examples()[kind];
        let valid = &bytes == example;
        let read = runtime().block_on(read_state(&lake, name, bytes));
        if valid {
            prop_assert!(read.is_ok(), "{name}: the valid example: {read:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A Delta log whose latest commit is hostile bytes does not read: a typed error naming the
    /// table, never a panic.
    #[test]
    fn a_hostile_delta_commit_is_a_typed_error((_, bytes) in hostile()) {
        let (dir, lake) = temp_lake();
        let log = crate::lake::delta::DeltaLog::new(&lake, "acme", "test");
        runtime().block_on(async {
            log.create_table().await.unwrap();
            let path = layout::delta_commit(1);
            lake.write(&path, Bytes::from(bytes)).await.unwrap();
            match log.snapshot().await {
                Ok(_) => {}
                Err(e) => {
                    let text = e.to_string();
                    let root = dir.path().display().to_string();
                    prop_assert!(text.contains(&root), "{text}");
                }
            }
            Ok(())
        })?;
    }
}
