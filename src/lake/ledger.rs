//! The ledger of erasures and expiries (`_auditlake/subdomain=SUB/ledger/`): the lake owner's
//! decisions that data must go, each recorded before the lake changes, so that every later
//! write applies them and a crash is finished by the next run.
//!
//! An entry (`NNNNNNNNNN.json`, create-if-absent, never rewritten) says what was decided: the
//! user ids to erase or the instant before which whole windows expire, the reason (a ticket or
//! request number), when, and by which run. Its end (`NNNNNNNNNN.done.json`, create-if-absent)
//! says what changed: the windows, their rows, the files purged. An entry without its end is
//! pending: the change was interrupted, and the next run (or command) takes it up again, from
//! the lake as it is.
//!
//! **Signed** when the lake is signed: an entry carries the key's fingerprint and its signature,
//! and a run carries out a pending entry only if the lake's key signed it, so that an entry
//! written by hand into a signed lake destroys nothing (`verify --public-key` names it).
//!
//! **What the ledger holds:** user ids (what Zendesk itself keeps in place of a name), reasons,
//! times and window ids. Never a name, an address, or a hash of one (a hash of a name can be
//! guessed).

use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::lake::layout;
use crate::lake::signing::{Signer, Verifier};
use crate::lake::storage::{Created, Lake, StorageError};
use crate::table::erase::Erasure;
use crate::units::time::Timestamp;

/// What an entry decides.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Decision {
    /// The data of these users is erased from every record of theirs, and from every record
    /// written later.
    Erase { user_ids: Vec<i64> },
    /// Every closed window that ends at or before `before` is removed; `before` is on the
    /// lake's grid (the retention floor).
    Expire { before: Timestamp },
}

/// One decision, as recorded before the lake changes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    /// The subdomain whose ledger holds it: signed with the rest, so that an entry copied from
    /// another subdomain's ledger is not this one's.
    #[serde(default)]
    pub subdomain: String,
    #[serde(flatten)]
    pub decision: Decision,
    pub reason: String,
    pub at: Timestamp,
    pub run_id: String,
    /// The fingerprint of the key that signed the entry, and its signature (base64) of the
    /// entry's bytes without the signature; absent in an unsigned lake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The unsigned entry this one signs again, written by the run that first signed the lake:
    /// the decision is this entry's from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub countersigns: Option<u64>,
}

impl Entry {
    /// The bytes the entry's signature signs: the entry without its signature.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature = None;
        serde_json::to_vec_pretty(&unsigned).expect("plain data serializes")
    }

    /// Whether `verifier`'s key signed the entry as it is.
    pub fn signed_by(&self, verifier: &Verifier) -> bool {
        self.key.as_deref() == Some(verifier.fingerprint())
            && self
                .signature
                .as_deref()
                .is_some_and(|s| verifier.verifies(&self.signed_message(), s))
    }

    /// The decision in a few words, for messages (ids and times only).
    pub fn describe(&self) -> String {
        match &self.decision {
            Decision::Erase { user_ids } => format!(
                "ledger entry {}: erase {} user(s), reason {:?}",
                self.seq,
                user_ids.len(),
                self.reason
            ),
            Decision::Expire { before } => format!(
                "ledger entry {}: expire the windows ending by {before}, reason {:?}",
                self.seq, self.reason
            ),
        }
    }
}

/// One window a decision changed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Changed {
    pub window: String,
    /// The generation written (an erased copy, or an expired window's tombstone).
    pub generation: u32,
    /// Rows changed (erase) or removed (expire).
    pub rows: u64,
}

/// What a decision changed, recorded once the change is complete.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Done {
    pub seq: u64,
    pub finished_at: Timestamp,
    pub windows: Vec<Changed>,
    /// Files removed besides the windows' own: older generations, files a Delta table kept
    /// for its older versions, leftovers of interrupted attempts.
    pub files_purged: u64,
    pub run_id: String,
}

/// The ledger as read: every entry, with its end if it has one.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// The subdomain whose ledger this is.
    pub subdomain: String,
    pub entries: Vec<(Entry, Option<Done>)>,
}

/// Why the ledger could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{path} is not a valid ledger entry ({reason}): the ledger of erasures is kept as written, never edited; restore it from a backup")]
    Corrupt { path: String, reason: String },
    #[error("the ledger's next entry is taken {0} times over: another writer is appending to it")]
    Contended(u32),
}

impl From<LedgerError> for crate::lake::manifest::ManifestError {
    fn from(e: LedgerError) -> Self {
        use crate::lake::manifest::ManifestError;
        match e {
            LedgerError::Storage(e) => ManifestError::Storage(e),
            LedgerError::Corrupt { path, reason } => ManifestError::Corrupt { path, reason },
            e @ LedgerError::Contended(_) => ManifestError::Corrupt {
                path: "the ledger".into(),
                reason: e.to_string(),
            },
        }
    }
}

/// Times an append re-reads the ledger after finding its number taken.
const RELOADS: u32 = 3;

fn entry_name(seq: u64) -> String {
    format!("{seq:010}.json")
}

fn done_name(seq: u64) -> String {
    format!("{seq:010}.done.json")
}

fn entry_path(subdomain: &str, seq: u64) -> Path {
    layout::ledger(subdomain).join(entry_name(seq))
}

fn done_path(subdomain: &str, seq: u64) -> Path {
    layout::ledger(subdomain).join(done_name(seq))
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, LedgerError> {
    serde_json::from_slice(bytes).map_err(|e| LedgerError::Corrupt {
        path: path.to_string(),
        reason: e.to_string(),
    })
}

impl Ledger {
    /// Reads the subdomain's ledger: one listing, then each entry.
    pub async fn read(lake: &Lake, subdomain: &str) -> Result<Ledger, LedgerError> {
        let mut entries = Vec::new();
        let mut done = std::collections::BTreeMap::new();
        let mut listed = lake.list(&layout::ledger(subdomain)).await?;
        listed.sort();
        for path in listed {
            let Some(name) = path.filename() else {
                continue;
            };
            let Some(bytes) = lake.read(&path).await? else {
                continue;
            };
            // Only the names the ledger writes: `{seq:010}.json` and `{seq:010}.done.json`,
            // each once, naming what they hold (another name for a number is an entry copied
            // in by other means).
            let corrupt = |reason: String| LedgerError::Corrupt {
                path: path.to_string(),
                reason,
            };
            let numbered = |stem: &str| stem.parse::<u64>().ok();
            if let Some(number) = name.strip_suffix(".done.json").and_then(numbered) {
                let end: Done = parse(&path, &bytes)?;
                if name != done_name(end.seq) || number != end.seq {
                    return Err(corrupt(format!(
                        "an entry's end named {name}, for entry {}",
                        end.seq
                    )));
                }
                done.insert(end.seq, end);
            } else if let Some(number) = name.strip_suffix(".json").and_then(numbered) {
                let entry: Entry = parse(&path, &bytes)?;
                if name != entry_name(entry.seq) || number != entry.seq {
                    return Err(corrupt(format!(
                        "an entry named {name} says it is entry {}",
                        entry.seq
                    )));
                }
                entries.push(entry);
            }
        }
        entries.sort_by_key(|e| e.seq);
        // Numbered from 1 without a gap: an entry removed would silently stop its decision from
        // being applied.
        if let Some((i, e)) = entries
            .iter()
            .enumerate()
            .find(|(i, e)| e.seq != *i as u64 + 1)
        {
            return Err(LedgerError::Corrupt {
                path: entry_path(subdomain, e.seq).to_string(),
                reason: format!(
                    "entry {} follows entry {i}: entries are missing from the ledger",
                    e.seq
                ),
            });
        }
        Ok(Ledger {
            subdomain: subdomain.to_string(),
            entries: entries
                .into_iter()
                .map(|e| {
                    let end = done.remove(&e.seq);
                    (e, end)
                })
                .collect(),
        })
    }

    /// The ledger as a signed lake's runs take it: the entries `verifier`'s key signed, and
    /// no other. An unsigned entry that a signed entry countersigns (one from before the lake
    /// was signed) is that entry's; any other entry the key did not sign is returned as the
    /// error: it was written by other means, and nothing it says is carried out or applied.
    pub fn trusted(&self, verifier: &Verifier) -> Result<Ledger, Box<Entry>> {
        if let Some(untrusted) = self.untrusted(verifier).first() {
            return Err(Box::new((*untrusted).clone()));
        }
        let entries = self
            .entries
            .iter()
            .filter(|(e, _)| Ledger::signed_here(e, verifier, &self.subdomain))
            .cloned()
            .collect();
        Ok(Ledger {
            subdomain: self.subdomain.clone(),
            entries,
        })
    }

    /// Whether `verifier`'s key signed `entry` for `subdomain`'s ledger.
    fn signed_here(entry: &Entry, verifier: &Verifier, subdomain: &str) -> bool {
        entry.subdomain == subdomain && entry.signed_by(verifier)
    }

    /// The entries that another entry countersigns (by `verifier`'s key, if given).
    fn countersigned(&self, verifier: Option<&Verifier>) -> std::collections::BTreeSet<u64> {
        self.entries
            .iter()
            .filter(|(e, _)| verifier.is_none_or(|v| Ledger::signed_here(e, v, &self.subdomain)))
            .filter_map(|(e, _)| e.countersigns)
            .collect()
    }

    /// The entries that `verifier`'s key did not sign and no signed entry countersigns.
    pub fn untrusted(&self, verifier: &Verifier) -> Vec<&Entry> {
        let countersigned = self.countersigned(Some(verifier));
        self.entries
            .iter()
            .map(|(e, _)| e)
            .filter(|e| {
                !Ledger::signed_here(e, verifier, &self.subdomain)
                    && !countersigned.contains(&e.seq)
            })
            .collect()
    }

    /// Every user id the ledger erases: what every write applies.
    pub fn erasure(&self) -> Erasure {
        Erasure::new(self.entries.iter().flat_map(|(e, _)| match &e.decision {
            Decision::Erase { user_ids } => user_ids.clone(),
            Decision::Expire { .. } => Vec::new(),
        }))
    }

    /// The retention floor: the latest `before` of every expiry (UTC seconds); windows ending
    /// at or before it are gone and never exported again.
    pub fn floor(&self) -> Option<i64> {
        self.entries
            .iter()
            .filter_map(|(e, _)| match &e.decision {
                Decision::Expire { before } => Some(before.seconds()),
                Decision::Erase { .. } => None,
            })
            .max()
    }

    /// The entries whose change was interrupted (an unsigned entry that a signed twin
    /// countersigns is the twin's: it is pending only as the twin is).
    pub fn pending(&self) -> impl Iterator<Item = &Entry> {
        let countersigned = self.countersigned(None);
        self.entries
            .iter()
            .filter(move |(e, done)| done.is_none() && !countersigned.contains(&e.seq))
            .map(|(e, _)| e)
    }

    /// The erasures, in order (an entry signed again counted once, as its twin).
    pub fn erasures(&self) -> impl Iterator<Item = &(Entry, Option<Done>)> {
        let countersigned = self.countersigned(None);
        self.entries.iter().filter(move |(e, _)| {
            matches!(e.decision, Decision::Erase { .. }) && !countersigned.contains(&e.seq)
        })
    }

    /// Appends `decision` for `reason` as the next entry (create-if-absent), signed by
    /// `signer` if given (`countersigns`: the unsigned entry it signs again), returning it.
    pub async fn append(
        lake: &Lake,
        subdomain: &str,
        decision: Decision,
        reason: &str,
        run_id: &str,
        signer: Option<&Signer>,
        countersigns: Option<u64>,
    ) -> Result<Entry, LedgerError> {
        for _ in 0..=RELOADS {
            let ledger = Ledger::read(lake, subdomain).await?;
            let mut entry = Entry {
                seq: ledger.entries.last().map_or(1, |(e, _)| e.seq + 1),
                subdomain: subdomain.to_string(),
                decision: decision.clone(),
                reason: reason.to_string(),
                at: Timestamp::now(),
                run_id: run_id.to_string(),
                key: signer.map(|s| s.fingerprint().to_string()),
                signature: None,
                countersigns,
            };
            if let Some(signer) = signer {
                entry.signature = Some(signer.sign(&entry.signed_message()));
            }
            let body = Bytes::from(serde_json::to_vec_pretty(&entry).expect("plain data"));
            let path = entry_path(subdomain, entry.seq);
            if lake.create(&path, body.clone()).await? == Created::Created
                || lake.read(&path).await?.as_ref() == Some(&body)
            {
                return Ok(entry);
            }
        }
        Err(LedgerError::Contended(RELOADS))
    }

    /// Signs again, with `signer`, every unsigned entry of a lake being signed for the first
    /// time (its entries were written before it had a key): each gets a signed twin that says
    /// which entry it countersigns, finished when the original is. Returns how many.
    pub async fn countersign(
        lake: &Lake,
        subdomain: &str,
        run_id: &str,
        signer: &Signer,
    ) -> Result<u64, LedgerError> {
        let ledger = Ledger::read(lake, subdomain).await?;
        let verifier = signer.verifier();
        let mut signed = 0;
        for (entry, done) in &ledger.entries {
            if ledger
                .untrusted(&verifier)
                .iter()
                .all(|u| u.seq != entry.seq)
            {
                continue;
            }
            let reason = format!(
                "{} (entry {} signed again when the lake was signed)",
                entry.reason, entry.seq
            );
            let decision = entry.decision.clone();
            let (signer, countersigns) = (Some(signer), Some(entry.seq));
            let twin = Ledger::append(
                lake,
                subdomain,
                decision,
                &reason,
                run_id,
                signer,
                countersigns,
            )
            .await?;
            if let Some(done) = done {
                let end = Done {
                    seq: twin.seq,
                    ..done.clone()
                };
                Ledger::finish(lake, subdomain, &end).await?;
            }
            signed += 1;
        }
        Ok(signed)
    }

    /// Records the end of entry `done.seq` (create-if-absent: a second end, from a run that
    /// finished the same entry again, leaves the first).
    pub async fn finish(lake: &Lake, subdomain: &str, done: &Done) -> Result<(), LedgerError> {
        let body = Bytes::from(serde_json::to_vec_pretty(done).expect("plain data"));
        lake.create(&done_path(subdomain, done.seq), body).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_are_numbered_and_pending_until_done() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap(), &Default::default()).unwrap();
        let erase = Decision::Erase {
            user_ids: vec![7, 8],
        };
        let first = Ledger::append(&lake, "acme", erase, "DPO-1", "r1", None, None)
            .await
            .unwrap();
        let expire = Decision::Expire {
            before: Timestamp::parse("2024-01-01T00:00:00Z").unwrap(),
        };
        let signer = Signer::from_pem(&crate::lake::signing::generate_pem()).unwrap();
        let second = Ledger::append(&lake, "acme", expire, "policy", "r1", Some(&signer), None)
            .await
            .unwrap();
        assert!(second.signed_by(&signer.verifier()) && !first.signed_by(&signer.verifier()));
        let mut forged = second.clone();
        forged.reason = "another".into();
        assert!(!forged.signed_by(&signer.verifier()));
        assert_eq!((first.seq, second.seq), (1, 2));
        let ledger = Ledger::read(&lake, "acme").await.unwrap();
        assert_eq!(ledger.pending().count(), 2);
        assert_eq!(ledger.erasure(), Erasure::new([7, 8]));
        assert_eq!(ledger.floor(), Some(1_704_067_200));
        let done = Done {
            seq: 1,
            finished_at: Timestamp::parse("2024-01-02T00:00:00Z").unwrap(),
            windows: Vec::new(),
            files_purged: 0,
            run_id: String::new(),
        };
        Ledger::finish(&lake, "acme", &done).await.unwrap();
        let ledger = Ledger::read(&lake, "acme").await.unwrap();
        assert_eq!(ledger.pending().map(|e| e.seq).collect::<Vec<_>>(), [2]);
        let text = String::from_utf8(
            lake.read(&entry_path("acme", 1))
                .await
                .unwrap()
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        assert!(text.contains("\"kind\": \"erase\""), "{text}");
    }
}
