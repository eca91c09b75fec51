//! The ledger of erasures and expiries, checked: an entry a crash interrupted is reported (its
//! data is still in the lake until the next run finishes it); with `--public-key`, an entry the
//! key did not sign is (a hand-written entry would destroy data when a run carries it out);
//! with the chain walked, every erase or expire link must name an entry that decided it.

use super::{Check, Kind, VerifyError};
use crate::lake::chain::LinkKind;
use crate::lake::ledger::{Decision, Ledger, LedgerError};

/// An erase or expire link, as the chain's walk found it.
#[derive(Debug)]
pub(super) struct PolicyLink {
    pub path: String,
    pub window: String,
    pub kind: LinkKind,
    pub ledger: Option<u64>,
    pub user_ids: Vec<i64>,
}

impl Check<'_> {
    pub(super) async fn check_ledger(&mut self) -> Result<(), VerifyError> {
        let ledger = match Ledger::read(self.lake, self.subdomain).await {
            Ok(ledger) => ledger,
            Err(LedgerError::Storage(e)) => return Err(e.into()),
            Err(e) => {
                self.found(Kind::CorruptManifest, None, None, e.to_string());
                return Ok(());
            }
        };
        let path = |seq: u64| {
            format!(
                "{}/{seq:010}.json",
                crate::lake::layout::ledger(self.subdomain)
            )
        };
        let untrusted: Vec<u64> = match &self.options.public_key {
            Some(verifier) => ledger.untrusted(verifier).iter().map(|e| e.seq).collect(),
            None => Vec::new(),
        };
        let pending: Vec<u64> = ledger.pending().map(|e| e.seq).collect();
        for (entry, _) in &ledger.entries {
            if pending.contains(&entry.seq) {
                self.found(
                    Kind::Pending,
                    None,
                    Some(path(entry.seq)),
                    format!("{} was interrupted: the data it removes is still in the lake until the next run (or `auditlake repair`) finishes it", entry.describe()),
                );
            }
            {
                if untrusted.contains(&entry.seq) {
                    self.found(
                        Kind::BadSignature,
                        None,
                        Some(path(entry.seq)),
                        format!("{} is not signed by --public-key's key: written by other means, or changed after it was signed", entry.describe()),
                    );
                }
            }
        }
        let links = std::mem::take(&mut self.policy_links);
        for link in links {
            let entry = link
                .ledger
                .and_then(|seq| ledger.entries.iter().find(|(e, _)| e.seq == seq));
            let decided = entry.is_some_and(|(e, _)| match (&e.decision, link.kind) {
                (Decision::Erase { user_ids }, LinkKind::Erase) => *user_ids == link.user_ids,
                (Decision::Expire { .. }, LinkKind::Expire) => true,
                _ => false,
            });
            if !decided {
                self.found(
                    Kind::ChainDisagrees,
                    Some(link.window),
                    Some(link.path),
                    format!("the {:?} link names ledger entry {:?}, which does not decide it: the ledger lost or changed an entry", link.kind, link.ledger),
                );
            }
        }
        Ok(())
    }
}
