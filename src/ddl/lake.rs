//! The small read-only look at a lake the DDL needs: one listing of `_auditlake/`, the
//! datasets, no data file.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use object_store::path::Path;

use super::DdlError;
use crate::lake::layout;
use crate::lake::manifest::{Manifest, TableFormat};
use crate::lake::storage::{Lake, StoreOptions};
use crate::table::schema::SCHEMA_VERSION;
use crate::units::time::day_of;

/// Opens the lake at `dest` for reading. A local directory that does not exist is no lake:
/// opening it would create it, and `ddl` never writes.
pub fn open(dest: &str, store: &StoreOptions) -> Result<Lake, DdlError> {
    Lake::open_existing(dest, store)?.ok_or_else(|| DdlError::NoLake {
        dest: dest.to_string(),
    })
}

/// What the DDL needs to know about a lake besides where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LakeFacts {
    /// The destination, for messages.
    pub dest: String,
    /// The subdomains whose datasets are in the lake, sorted.
    pub subdomains: Vec<String>,
    /// The UTC day of the earliest exported window (committed or open), if any.
    pub first_day: Option<NaiveDate>,
    /// Whether a subdomain's dataset is in table format `delta`: the table root is a Delta table.
    pub delta: bool,
}

/// Reads the lake's subdomains (from its `dataset.json` files) and its first day (the earliest
/// marker or open window), restricted to `only` if given. Reads only: one listing of
/// `_auditlake/`, then each dataset and open-window record.
pub async fn read_lake(lake: &Lake, only: Option<&str>) -> Result<LakeFacts, DdlError> {
    let dest = lake.display().to_string();
    let listing = lake.list(&Path::from(layout::META_DIR)).await?;
    let mut subdomains = BTreeSet::new();
    for path in &listing {
        let name = path
            .as_ref()
            .strip_prefix(layout::META_DIR)
            .and_then(|p| p.strip_prefix("/subdomain="))
            .and_then(|p| p.strip_suffix("/dataset.json"));
        if let Some(sub) = name.filter(|s| crate::units::valid_subdomain(s)) {
            subdomains.insert(sub.to_string());
        }
    }
    if subdomains.is_empty() {
        return Err(DdlError::NoLake { dest });
    }
    if let Some(only) = only {
        if !subdomains.contains(only) {
            return Err(DdlError::NoSubdomain {
                dest,
                subdomain: only.to_string(),
                found: subdomains.into_iter().collect::<Vec<_>>().join(", "),
            });
        }
        subdomains = BTreeSet::from([only.to_string()]);
    }
    let mut first: Option<i64> = None;
    let mut delta = false;
    for sub in &subdomains {
        let manifest = Manifest::new(lake.clone(), sub);
        // A 0.1 lake (its dataset, or its data beside `_auditlake/`) is ManifestError::Legacy:
        // a table over the root would show none of it.
        manifest.refuse_legacy_data().await?;
        if let Some(dataset) = manifest.dataset().await? {
            if dataset.schema_version != SCHEMA_VERSION {
                return Err(DdlError::SchemaVersion {
                    dest,
                    subdomain: sub.clone(),
                    found: dataset.schema_version,
                    code: SCHEMA_VERSION,
                });
            }
            delta |= dataset.table_format == TableFormat::Delta;
        }
        let markers = layout::markers(sub);
        let committed = listing
            .iter()
            .filter(|p| p.prefix_matches(&markers))
            .filter_map(|p| layout::parse_marker(p).map(|(start, _)| start));
        // Every open window's start, those whose close failed too (`open.json`'s `earlier`).
        let open: Vec<i64> = manifest
            .open_windows()
            .await?
            .iter()
            .map(|w| w.start.seconds())
            .collect();
        for start in committed.chain(open) {
            first = Some(first.map_or(start, |f| f.min(start)));
        }
    }
    Ok(LakeFacts {
        dest,
        subdomains: subdomains.into_iter().collect(),
        first_day: first.map(day_of),
        delta,
    })
}
