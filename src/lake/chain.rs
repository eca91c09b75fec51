//! The digest chain of one subdomain (`_auditlake/subdomain=SUB/digests/`): every commit that
//! makes a window's files final (its first commit, a close's compaction, a repair's new
//! generation) appends a digest naming the window, its generation, its files with their SHA-256
//! and rows, and the SHA-256 of the digest before it. Digests are created with create-if-absent
//! and never rewritten, so an auditor walking the chain sees every change, not only the latest
//! state: a repair is a link saying which generation it replaces and why.
//!
//! Open-window deltas are not chained: they are provisional (the close replaces them by its
//! compaction, which is chained), and chaining each would add a link per scheduled run.
//!
//! **Order**: files, digest, marker. The digest is the commit's evidence, written before the
//! marker makes the commit: a crash between the two leaves a link whose commit never happened
//! (the window has no marker of that generation, or a later link of the same window supersedes
//! it, when the next run commits the window); `verify` tells such links apart from the links of
//! commits. A marker is never without its link, so no run has to look for one. Markers from
//! before digests were recorded are not chained ("no chain yet" until the next commit), nor are
//! empty windows.

use std::collections::BTreeSet;

use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::lake::layout;
use crate::lake::manifest::{FileEntry, WindowRecord};
use crate::lake::storage::{Created, Lake, StorageError};
use crate::plan::window::format_rfc3339;
use crate::table::encode::hex;

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
    /// The SHA-256 of the previous digest's bytes (`None` for the first).
    pub previous: Option<String>,
    pub at: String,
    pub run_id: String,
}

/// A file as a digest names it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChainedFile {
    pub path: String,
    pub sha256: String,
    pub rows: u64,
}

impl ChainedFile {
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

/// `(seq, window, generation)` of a digest's file name.
pub fn parse_digest_name(name: &str) -> Option<(u64, String, u32)> {
    let stem = name.strip_suffix(".json")?;
    let (seq, rest) = stem.split_once('-')?;
    let (window, generation) = rest.rsplit_once("-g")?;
    Some((
        seq.parse().ok()?,
        window.to_string(),
        generation.parse().ok()?,
    ))
}

/// The chain's links as one listing names them: `(seq, window, generation, path)`, by seq.
pub async fn links(
    lake: &Lake,
    subdomain: &str,
) -> Result<Vec<(u64, String, u32, Path)>, StorageError> {
    let mut links: Vec<_> = lake
        .list(&layout::digests(subdomain))
        .await?
        .into_iter()
        .filter_map(|p| {
            let (seq, window, generation) = parse_digest_name(p.filename()?)?;
            Some((seq, window, generation, p))
        })
        .collect();
    links.sort_by_key(|l| l.0);
    Ok(links)
}

/// The chain's head, as a run appends to it: the next seq, the previous digest's hash, and the
/// commits already chained.
#[derive(Debug, Default)]
pub struct Head {
    next: u64,
    previous: Option<String>,
    chained: BTreeSet<(String, u32)>,
}

impl Head {
    /// Reads the head from the lake: one listing, and the last digest.
    pub async fn read(lake: &Lake, subdomain: &str) -> Result<Head, StorageError> {
        let links = links(lake, subdomain).await?;
        let chained = links.iter().map(|(_, w, g, _)| (w.clone(), *g)).collect();
        let Some((seq, _, _, path)) = links.last() else {
            return Ok(Head {
                next: 1,
                previous: None,
                chained,
            });
        };
        let previous = lake.read(path).await?.map(|bytes| sha256_hex(&bytes));
        Ok(Head {
            next: seq + 1,
            previous,
            chained,
        })
    }

    /// Whether `window`'s `generation` has a link.
    pub fn has(&self, window: &str, generation: u32) -> bool {
        self.chained.contains(&(window.to_string(), generation))
    }

    /// Appends the link of `record` (the marker about to be created): `replaces` the generation
    /// before, for a repair. A marker whose files have no recorded digest is not chained (returns
    /// `false`).
    pub async fn append(
        &mut self,
        lake: &Lake,
        subdomain: &str,
        record: &WindowRecord,
        replaces: Option<u32>,
    ) -> Result<bool, StorageError> {
        // An empty window has nothing to prove (a backfill commits thousands before the first
        // record); emptying a chained window is caught by its link.
        let Some(files) = ChainedFile::of(&record.files).filter(|f| !f.is_empty()) else {
            return Ok(false);
        };
        let digest = Digest {
            seq: self.next,
            window: record.window.clone(),
            generation: record.generation,
            replaces,
            reason: record.reason.clone(),
            files,
            previous: self.previous.clone(),
            at: format_rfc3339(chrono::Utc::now().timestamp()),
            run_id: record.run_id.clone(),
        };
        let body = Bytes::from(serde_json::to_vec_pretty(&digest).expect("plain data serializes"));
        let path = layout::digest(subdomain, digest.seq, &digest.window, digest.generation);
        if lake.create(&path, body.clone()).await? == Created::AlreadyExisted {
            // A create that applied but whose answer was lost, retried: the same bytes are
            // this very link. Anything else under the lease is impossible; it is reported by
            // verify as a fork rather than overwritten.
            let existing = lake.read(&path).await?;
            if existing.as_ref() != Some(&body) {
                tracing::error!(path = %path, "a digest of this seq exists with other content; the chain is not extended");
                return Ok(false);
            }
        }
        self.next += 1;
        self.previous = Some(sha256_hex(&body));
        self.chained
            .insert((record.window.clone(), record.generation));
        Ok(true)
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}
