//! Lake: where the files go and what makes them the truth.
//!
//! `layout` is the only place that makes a path; [`storage`] is object_store I/O on local disk
//! or an object store; [`manifest`] pins the dataset and records a marker per committed window;
//! [`lease`] keeps one run per lake and subdomain (its protocol, its fence, its holder);
//! [`change`] is the one way the lake changes (a change value, one commit sequence, one
//! convergence); [`view`] is the one answer to what the table is now; [`delta`] is the Delta
//! log every change is also committed to (its log, snapshot and retention); [`chain`] is the
//! digest chain. Data first, commit last, create-if-absent.
//!
//! A run sees one face of all this: [`open_for_writing`], then [`Held`] (the lease, and the
//! [`Committer`] it fences), whose committer reads the state the run starts from
//! ([`LakeState`]) and commits every change.

pub mod chain;
pub mod change;
pub(crate) mod commit;
pub mod delta;
#[cfg(test)]
pub(crate) mod faulty;
mod held;
#[cfg(test)]
mod hostile;
pub(crate) mod layout;
pub mod lease;
pub mod ledger;
pub mod manifest;
pub mod policy;
pub mod signing;
mod state;
pub mod storage;
mod vacuum;
pub mod view;

pub use change::{Change, ChangeKind};
pub use commit::{CommitError, Committer};
pub use held::{open_for_writing, Held};
pub use state::LakeState;
