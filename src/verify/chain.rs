//! The digest chain walked by `verify --integrity` (and `--deep`): every link in order, each the
//! SHA-256 successor of the one before, and each window's current marker named, files and
//! digests, by its window's latest link. A link deleted, edited, reordered or truncated breaks
//! the walk where it happened; a marker edited to name other files, or deleted with its files,
//! disagrees with its link. Every finding is reported; the walk never stops early.

use std::collections::BTreeMap;

use super::{Check, Kind, VerifyError};
use crate::lake::chain::{links, sha256_hex, ChainedFile, Digest};

/// What the walk found, for the report's note.
#[derive(Debug, Default)]
pub(super) struct Walk {
    pub links: u64,
}

impl Check<'_> {
    /// Walks the subdomain's chain and compares it with the markers.
    pub(super) async fn walk_chain(&mut self) -> Result<Walk, VerifyError> {
        let links = links(self.lake, self.subdomain).await?;
        let mut walk = Walk {
            links: links.len() as u64,
        };
        if links.is_empty() {
            return Ok(walk);
        }
        let mut previous: Option<String> = None;
        let mut latest: BTreeMap<(String, u32), Digest> = BTreeMap::new();
        let mut first_at: Option<String> = None;
        for (i, (seq, window, generation, path)) in links.iter().enumerate() {
            let expected = i as u64 + 1;
            let path_text = path.to_string();
            if *seq != expected {
                self.found(
                    Kind::ChainBroken,
                    Some(window.clone()),
                    Some(path_text.clone()),
                    format!("link {seq} where link {expected} should be: a link is missing, or two share a number"),
                );
            }
            let Some(bytes) = self.lake.read(path).await? else {
                continue;
            };
            let digest: Digest = match serde_json::from_slice(&bytes) {
                Ok(digest) => digest,
                Err(e) => {
                    self.found(
                        Kind::ChainBroken,
                        Some(window.clone()),
                        Some(path_text),
                        format!("the digest does not parse ({e}): truncated or edited"),
                    );
                    previous = Some(sha256_hex(&bytes));
                    continue;
                }
            };
            if digest.seq != *seq || digest.window != *window || digest.generation != *generation {
                self.found(
                    Kind::ChainBroken,
                    Some(window.clone()),
                    Some(path_text.clone()),
                    format!(
                        "the digest says link {} of window {} generation {}, its name another",
                        digest.seq, digest.window, digest.generation
                    ),
                );
            }
            if digest.previous != previous {
                self.found(
                    Kind::ChainBroken,
                    Some(window.clone()),
                    Some(path_text),
                    "the link does not follow the one before it (its previous hash differs): a link before it was edited, removed or swapped".into(),
                );
            }
            previous = Some(sha256_hex(&bytes));
            first_at.get_or_insert_with(|| digest.at.clone());
            latest.insert((digest.window.clone(), digest.generation), digest);
        }
        self.compare_markers(&latest, first_at.as_deref());
        walk.links = links.len() as u64;
        Ok(walk)
    }

    /// Each current marker against the latest link of its window and generation; each chained
    /// window without a marker.
    fn compare_markers(
        &mut self,
        latest: &BTreeMap<(String, u32), Digest>,
        first_at: Option<&str>,
    ) {
        let mut findings = Vec::new();
        for marker in self.markers.values() {
            let provable = ChainedFile::of(&marker.files).filter(|f| !f.is_empty());
            match (latest.get(&(marker.window.clone(), marker.generation)), provable) {
                (Some(link), named) if named.as_ref() != Some(&link.files) => findings.push((
                    Kind::ChainDisagrees,
                    marker.window.clone(),
                    format!("the marker (generation {}) names other files or digests than the chain's link {}: edited?", marker.generation, link.seq),
                )),
                (Some(_), _) | (None, None) => {}
                (None, Some(_)) if first_at.is_some_and(|at| marker.completed_at.as_str() < at) => {}
                (None, Some(_)) => findings.push((
                    Kind::Unchained,
                    marker.window.clone(),
                    format!("generation {} has no link in the chain", marker.generation),
                )),
            }
        }
        let windows: std::collections::BTreeSet<&str> =
            latest.keys().map(|(w, _)| w.as_str()).collect();
        for window in windows {
            let has_marker = self.markers.values().any(|m| m.window == window);
            if !has_marker && !self.unreadable_window(window) {
                findings.push((
                    Kind::ChainDisagrees,
                    window.to_string(),
                    "the chain names the window's files, but it has no marker: removed with its files, or its commit was interrupted (the next export commits it)".into(),
                ));
            }
        }
        for (kind, window, detail) in findings {
            self.found(kind, Some(window), None, detail);
        }
    }

    fn unreadable_window(&self, window: &str) -> bool {
        self.unreadable
            .keys()
            .any(|&start| crate::plan::window::format_compact(start) == window)
    }
}
