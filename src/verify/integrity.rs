//! `verify --integrity` (also part of `--deep`): every file hashed (SHA-256, streamed, so memory
//! stays one chunk whatever the file's size) and compared with the digest its marker recorded
//! when the file was written. A file whose bytes changed after its commit is `Altered`; a file
//! from before digests were recorded is counted, not judged.

use std::collections::HashMap;

use futures::StreamExt;

use super::{Check, Kind, ToRead, VerifyError};
use crate::plan::window::Window;
use object_store::path::Path;

/// Files hashed at once: each is one streamed GET.
const HASH_READS: usize = 8;

/// Files between two progress lines in the log.
const PROGRESS_EVERY: usize = 1_000;

impl Check<'_> {
    /// The SHA-256 each file's marker (or the open window's record) recorded, by path.
    pub(super) fn recorded_digests(&self) -> HashMap<String, String> {
        self.markers
            .values()
            .chain(&self.open)
            .flat_map(|r| &r.files)
            .filter_map(|f| Some((f.path.clone(), f.sha256.clone()?)))
            .collect()
    }

    /// Hashes every file of `to_read` that has a recorded digest and reports each that differs.
    pub(super) async fn hash_files(&mut self, to_read: &[ToRead]) -> Result<(), VerifyError> {
        let digests = self.recorded_digests();
        let expected: Vec<_> = to_read
            .iter()
            .map(|(window, path, _, _)| (*window, path.clone(), digests.get(path).cloned()))
            .collect();
        let unhashed = expected.iter().filter(|(_, _, e)| e.is_none()).count();
        if unhashed > 0 {
            tracing::info!(
                files = unhashed,
                "files written before digests were recorded: not judged by --integrity"
            );
        }
        let lake = self.lake;
        let total = expected.len() - unhashed;
        let mut hashes = futures::stream::iter(
            expected
                .into_iter()
                .filter_map(|(w, p, e)| e.map(|e| (w, p, e)))
                .map(|(window, path, want)| async move {
                    let got = lake.sha256(&Path::from(path.as_str())).await;
                    (window, path, want, got)
                }),
        )
        .buffer_unordered(HASH_READS);
        let mut done = 0;
        while let Some((window, path, want, got)) = hashes.next().await {
            done += 1;
            if done % PROGRESS_EVERY == 0 {
                tracing::info!(done, total, "hashing the lake's files");
            }
            match got? {
                Some(got) if got == want => {}
                Some(got) => self.found(
                    Kind::Altered,
                    Some(window.id()),
                    Some(path),
                    format!("SHA-256 {got}, the marker recorded {want} when the file was written"),
                ),
                // Missing files are reported by the listing (MissingFile).
                None => {}
            }
        }
        Ok(())
    }

    /// Compares the bytes of a file read whole (by `--deep`) with its recorded digest
    /// (`digests`, from [`Check::recorded_digests`]).
    pub(super) fn check_bytes(
        &mut self,
        digests: &HashMap<String, String>,
        window: &Window,
        path: &str,
        bytes: &[u8],
    ) {
        let Some(want) = digests.get(path).cloned() else {
            return;
        };
        let got = crate::table::encode::hex(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref(),
        );
        if got != want {
            self.found(
                Kind::Altered,
                Some(window.id()),
                Some(path.to_string()),
                format!("SHA-256 {got}, the marker recorded {want} when the file was written"),
            );
        }
    }
}
