//! The digest chain walked by `verify --integrity` (and `--deep`): every link in order, each the
//! SHA-256 successor of the one before, and each window's current marker named, files and
//! digests, by its window's latest link. A link deleted, edited, reordered or truncated breaks
//! the walk where it happened; a marker edited to name other files, or deleted with its files,
//! disagrees with its link. Every finding is reported; the walk never stops early.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Check, Kind, VerifyError};
use crate::lake::chain::{links, sha256_hex, signed_message, ChainedFile, Digest, LinkKind};
use crate::units::time::format_compact;
use crate::units::time::Timestamp;

/// What the walk found, for the report's note.
#[derive(Debug, Default)]
pub(super) struct Walk {
    pub links: u64,
}

impl Check<'_> {
    /// Walks the subdomain's chain and compares it with the markers and the lake's `listing`.
    pub(super) async fn walk_chain(
        &mut self,
        listing: &HashMap<String, u64>,
    ) -> Result<Walk, VerifyError> {
        let links = links(self.lake, self.subdomain).await?;
        let walk = Walk {
            links: links.len() as u64,
        };
        self.check_key_pin();
        let mut previous: Option<String> = None;
        let mut last_seq = 0;
        // Each window's latest link (by seq).
        let mut latest: BTreeMap<String, Digest> = BTreeMap::new();
        let mut first_at: Option<Timestamp> = None;
        for (seq, path) in &links {
            let path_text = path.to_string();
            if *seq != last_seq + 1 {
                self.found(
                    Kind::ChainBroken,
                    None,
                    Some(path_text.clone()),
                    format!(
                        "link {seq} follows link {last_seq}: links {} to {} are missing",
                        last_seq + 1,
                        seq - 1
                    ),
                );
            }
            last_seq = *seq;
            let Some(bytes) = self.lake.read(path).await? else {
                continue;
            };
            let digest: Digest = match serde_json::from_slice(&bytes) {
                Ok(digest) => digest,
                Err(e) => {
                    self.found(
                        Kind::ChainBroken,
                        None,
                        Some(path_text),
                        format!("the link does not parse ({e}): truncated or edited"),
                    );
                    previous = Some(sha256_hex(&bytes));
                    continue;
                }
            };
            self.check_link(&digest, *seq, &path_text, previous.as_deref(), &latest);
            previous = Some(sha256_hex(&bytes));
            first_at.get_or_insert(digest.at);
            latest.insert(digest.window.clone(), digest);
        }
        self.compare_markers(&latest, first_at, listing);
        Ok(walk)
    }

    /// `--public-key` against the key the lake pins for its chain.
    fn check_key_pin(&mut self) {
        if let (Some(verifier), Some(pinned)) = (&self.options.public_key, &self.signing_key) {
            if verifier.fingerprint() != pinned {
                let detail = format!(
                    "--public-key is key {}, the lake pins key {pinned} for its chain",
                    verifier.fingerprint()
                );
                self.found(Kind::BadSignature, None, None, detail);
            }
        }
    }

    /// One link that parses, `seq` by its name, after the link whose hash is `previous`: its
    /// place in the chain, its signature, and what it must account for (`latest`: each window's
    /// link before it).
    fn check_link(
        &mut self,
        digest: &Digest,
        seq: u64,
        path_text: &str,
        previous: Option<&str>,
        latest: &BTreeMap<String, Digest>,
    ) {
        if digest.seq != seq {
            self.found(
                Kind::ChainBroken,
                Some(digest.window.clone()),
                Some(path_text.to_string()),
                format!(
                    "the link says it is link {}, its name {seq}: moved or swapped",
                    digest.seq
                ),
            );
        }
        if digest.previous.as_deref() != previous {
            self.found(
                Kind::ChainBroken,
                Some(digest.window.clone()),
                Some(path_text.to_string()),
                "the link does not follow the one before it (its previous hash differs): a link before it was edited, removed or swapped".into(),
            );
        }
        self.check_signature(digest, path_text);
        if let Some(kind) = digest.kind {
            self.policy_links.push(super::ledger::PolicyLink {
                path: path_text.to_string(),
                window: digest.window.clone(),
                kind,
                ledger: digest.ledger,
                user_ids: digest.user_ids.clone(),
            });
        }
        if let Some(problem) = accounts_for(digest, latest.get(&digest.window)) {
            self.found(
                Kind::ChainDisagrees,
                Some(digest.window.clone()),
                Some(path_text.to_string()),
                problem,
            );
        }
    }

    /// Each current marker against its window's latest link, and each chained window without a
    /// marker.
    fn compare_markers(
        &mut self,
        latest: &BTreeMap<String, Digest>,
        first_at: Option<Timestamp>,
        listing: &HashMap<String, u64>,
    ) {
        let mut findings = Vec::new();
        // A compacted day's windows keep their links: history, the day's marker now stands.
        let marked: BTreeSet<String> = self
            .markers
            .values()
            .map(|m| m.window.clone())
            .chain(self.covered.iter().map(|&s| format_compact(s)))
            .collect();
        for marker in self.markers.values() {
            let named = ChainedFile::of(&marker.files);
            match latest.get(&marker.window) {
                Some(link) if link.generation != marker.generation => findings.push((
                    Kind::ChainDisagrees,
                    marker.window.clone(),
                    format!("the window's latest link ({}) is of generation {}, its marker of generation {}: a marker replaced or rolled back?", link.seq, link.generation, marker.generation),
                )),
                Some(link) if named.as_ref() == Some(&link.files) => {}
                // An empty first commit after a link whose commit never came (its files gone).
                Some(link)
                    if marker.files.is_empty()
                        && link.files.iter().all(|f| !listing.contains_key(&f.path)) => {}
                Some(link) => findings.push((
                    Kind::ChainDisagrees,
                    marker.window.clone(),
                    format!("the marker names other files or digests than the window's latest link ({}): edited?", link.seq),
                )),
                // Before the chain began (or an empty window): nothing to compare.
                None if first_at.is_none_or(|at| marker.completed_at < at) => {}
                // No digests recorded (written before they were), or an empty window.
                None if named.as_ref().is_none_or(Vec::is_empty) => {}
                None => findings.push((
                    Kind::Unchained,
                    marker.window.clone(),
                    format!("generation {} has no link in the chain", marker.generation),
                )),
            }
        }
        for (window, link) in latest {
            if !marked.contains(window) && !self.unreadable_window(window) {
                let present = link
                    .files
                    .iter()
                    .filter(|f| listing.contains_key(&f.path))
                    .count();
                findings.push((
                    Kind::ChainDisagrees,
                    window.clone(),
                    format!("the chain's link {} names the window's files ({present} of {} in the lake), but the window has no marker: removed with its files, or its commit was interrupted (the next export commits it)", link.seq, link.files.len()),
                ));
            }
        }
        for (kind, window, detail) in findings {
            self.found(kind, Some(window), None, detail);
        }
    }

    /// A link's signature against `--public-key`, if given.
    fn check_signature(&mut self, digest: &Digest, path: &str) {
        let Some(verifier) = self.options.public_key.clone() else {
            return;
        };
        let problem = match (&digest.key, &digest.signature) {
            (_, None) => Some("the link is not signed".to_string()),
            (Some(key), Some(_)) if key != verifier.fingerprint() => Some(format!(
                "the link is signed by key {key}, not by --public-key's"
            )),
            (_, Some(signature)) if !verifier.verifies(&signed_message(digest), signature) => {
                Some("the signature does not verify: the link changed after it was signed".into())
            }
            _ => None,
        };
        if let Some(detail) = problem {
            self.found(
                Kind::BadSignature,
                Some(digest.window.clone()),
                Some(path.to_string()),
                detail,
            );
        }
    }

    fn unreadable_window(&self, window: &str) -> bool {
        self.unreadable
            .keys()
            .any(|&start| crate::units::time::format_compact(start) == window)
    }
}

/// What is wrong with an erasure's or an expiry's link, given the window's link before it: it
/// must replace exactly the files that link names, and an erasure must keep every file's rows
/// (same rows, other values), an expiry name no file. `None` for a sound link, or any other.
fn accounts_for(link: &Digest, before: Option<&Digest>) -> Option<String> {
    let kind = link.kind?;
    let replaced = link.replaced.as_deref().unwrap_or_default();
    if let Some(before) = before.filter(|b| b.files != replaced) {
        return Some(format!(
            "the {kind:?} link replaces other files than the window's link {} names: the chain does not account for the files it changed",
            before.seq
        ));
    }
    let rows = |files: &[ChainedFile]| files.iter().map(|f| f.rows).collect::<Vec<_>>();
    match kind {
        LinkKind::Erase if rows(&link.files) != rows(replaced) => Some(
            "the erase link's files hold other rows than those it replaced: an erasure changes values, never rows".into(),
        ),
        LinkKind::Expire if !link.files.is_empty() => {
            Some("the expire link names files: an expired window has none".into())
        }
        _ => None,
    }
}
