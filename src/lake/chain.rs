//! The digest chain of one subdomain (`_auditlake/subdomain=SUB/digests/`): every commit that
//! makes a window's files final (its first commit, a close's compaction, a repair's new
//! generation) appends a digest naming the window, its generation, its files with their SHA-256
//! and rows, and the SHA-256 of the digest before it. Digests are created with create-if-absent
//! and never rewritten, so an auditor walking the chain sees every change, not only the latest
//! state: a repair is a link saying which generation it replaces and why.
//!
//! Open-window increments are not chained: they are provisional (the close replaces them by its
//! compaction, which is chained), and chaining each would add a link per scheduled run.
//!
//! **Order**: files, digest, marker. The digest is the commit's evidence, written before the
//! marker makes the commit: a crash between the two leaves a link whose commit never happened
//! (the window has no marker of that generation, or a later link of the same window supersedes
//! it, when the next run commits the window); `verify` tells such links apart from the links of
//! commits. A marker is never without its link, so no run has to look for one. Markers from
//! before digests were recorded are not chained ("no chain yet" until the next commit), nor are
//! empty windows.

use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::lake::layout;
use crate::lake::manifest::{FileEntry, WindowRecord};
use crate::lake::signing::Signer;
use crate::lake::storage::{Created, Lake, StorageError};
use crate::table::encode::hex;
use crate::units::time::Timestamp;

/// One link of the chain.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Digest {
    /// 1 for the chain's first link, one more each link.
    pub seq: u64,
    pub window: String,
    pub generation: u32,
    /// The generation this one replaces (a repair), and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub files: Vec<ChainedFile>,
    /// What kind of change an erasure's or an expiry's link records (absent for every other
    /// link: an export, a close, a compaction, a repair).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<LinkKind>,
    /// An erasure's user ids (what Zendesk keeps in place of their names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_ids: Vec<i64>,
    /// The files an erasure or expiry replaced, with their hashes: the chain accounts for every
    /// byte that changed after a file's first link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<Vec<ChainedFile>>,
    /// Rows an erasure changed, or an expiry removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_changed: Option<u64>,
    /// The ledger entry that decided it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<u64>,
    /// The SHA-256 of the previous digest's bytes (`None` for the first).
    pub previous: Option<String>,
    pub at: Timestamp,
    pub run_id: String,
    /// The fingerprint of the key that signed the link, and its signature (base64) of the
    /// link's bytes without the signature (see [`signed_message`]); absent when unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// The kinds of change a link records besides a window's files being written.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// The window's files rewritten with some users' data erased: same rows, same order.
    Erase,
    /// The window removed for the lake's retention: its marker is a tombstone, its files gone.
    Expire,
}

/// What an erasure's or an expiry's link adds to a window's link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub kind: LinkKind,
    pub user_ids: Vec<i64>,
    /// The files replaced, as the window's marker named them.
    pub replaced: Vec<ChainedFile>,
    pub rows_changed: u64,
    pub ledger: u64,
}

/// The bytes a link's signature signs: the link as written, without its signature.
pub fn signed_message(digest: &Digest) -> Vec<u8> {
    let mut unsigned = digest.clone();
    unsigned.signature = None;
    serde_json::to_vec_pretty(&unsigned).expect("plain data serializes")
}

/// A file as a digest names it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChainedFile {
    pub path: String,
    pub sha256: String,
    pub rows: u64,
}

impl ChainedFile {
    /// The files of a marker as a link names what it replaced: a file without a recorded digest
    /// (a marker older than digests) is named with an empty one.
    pub fn replaced(files: &[FileEntry]) -> Vec<ChainedFile> {
        files
            .iter()
            .map(|f| ChainedFile {
                path: f.path.clone(),
                sha256: f.sha256.clone().unwrap_or_default(),
                rows: f.rows,
            })
            .collect()
    }

    /// The files of a marker, as a digest names them; `None` if one has no recorded digest.
    pub fn of(files: &[FileEntry]) -> Option<Vec<ChainedFile>> {
        files
            .iter()
            .map(|f| {
                Some(ChainedFile {
                    path: f.path.clone(),
                    sha256: f.sha256.clone()?,
                    rows: f.rows,
                })
            })
            .collect()
    }
}

/// The seq of a link's file name.
pub fn parse_digest_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".json")?;
    (stem.len() == 10).then(|| stem.parse().ok()).flatten()
}

/// The chain's links as one listing names them, by seq.
pub async fn links(lake: &Lake, subdomain: &str) -> Result<Vec<(u64, Path)>, StorageError> {
    let mut links: Vec<_> = lake
        .list(&layout::digests(subdomain))
        .await?
        .into_iter()
        .filter_map(|p| Some((parse_digest_name(p.filename()?)?, p)))
        .collect();
    links.sort_by_key(|l| l.0);
    Ok(links)
}

/// The chain's head, as a run appends to it: the next seq and the previous link's hash.
#[derive(Debug, Default)]
pub struct Head {
    next: u64,
    previous: Option<String>,
}

/// Times an append re-reads the head after finding its seq taken (by an earlier create of its
/// own whose answer was lost, so that its commit failed).
const HEAD_RELOADS: u32 = 3;

impl Head {
    /// Reads the head from the lake: one listing, and the last link.
    pub async fn read(lake: &Lake, subdomain: &str) -> Result<Head, StorageError> {
        let links = links(lake, subdomain).await?;
        let Some((seq, path)) = links.last() else {
            return Ok(Head {
                next: 1,
                previous: None,
            });
        };
        let previous = lake.read(path).await?.map(|bytes| sha256_hex(&bytes));
        Ok(Head {
            next: seq + 1,
            previous,
        })
    }

    /// Appends the link of `record` (the marker about to be created): `replaces` the generation
    /// before, for a repair; `evidence` what an erasure or an expiry adds. A first commit of an empty window is not chained (a backfill
    /// commits thousands before the first record); neither is a marker whose files have no
    /// recorded digest. Returns whether a link was written.
    pub async fn append(
        &mut self,
        lake: &Lake,
        subdomain: &str,
        record: &WindowRecord,
        replaces: Option<u32>,
        evidence: Option<&Evidence>,
        signer: Option<&Signer>,
    ) -> Result<bool, StorageError> {
        let Some(files) = ChainedFile::of(&record.files) else {
            return Ok(false);
        };
        if files.is_empty() && replaces.is_none() && record.reason.is_none() {
            return Ok(false);
        }
        for _ in 0..=HEAD_RELOADS {
            let mut digest = Digest {
                seq: self.next,
                window: record.window.clone(),
                generation: record.generation,
                replaces,
                reason: record.reason.clone(),
                files: files.clone(),
                kind: evidence.map(|e| e.kind),
                user_ids: evidence.map(|e| e.user_ids.clone()).unwrap_or_default(),
                replaced: evidence.map(|e| e.replaced.clone()),
                rows_changed: evidence.map(|e| e.rows_changed),
                ledger: evidence.map(|e| e.ledger),
                previous: self.previous.clone(),
                at: Timestamp::now(),
                run_id: record.run_id.clone(),
                key: signer.map(|s| s.fingerprint().to_string()),
                signature: None,
            };
            if let Some(signer) = signer {
                digest.signature = Some(signer.sign(&signed_message(&digest)));
            }
            let body =
                Bytes::from(serde_json::to_vec_pretty(&digest).expect("plain data serializes"));
            let path = layout::digest(subdomain, digest.seq);
            let created = lake.create(&path, body.clone()).await?;
            // A create that applied but whose answer was lost, retried by the store client,
            // finds these very bytes.
            if created == Created::Created || lake.read(&path).await?.as_ref() == Some(&body) {
                self.next += 1;
                self.previous = Some(sha256_hex(&body));
                return Ok(true);
            }
            // The seq is taken: by an earlier link of this run whose create failed after it
            // applied (its commit then failed). Follow the chain as the lake holds it.
            *self = Head::read(lake, subdomain).await?;
        }
        Err(StorageError::Open {
            dest: lake.display().to_string(),
            reason: format!("the digest chain's next link is taken {HEAD_RELOADS} times over: another writer is appending to it"),
        })
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}
