//! List and export filters, and query strings built as ordered pairs.
//!
//! `filter[created_at][]` must appear twice, start then end; a map-based query builder would keep
//! only one of them, so every query here is a `Vec` of pairs, in order.

use serde::{Deserialize, Serialize};

use crate::units::time::format_rfc3339;

/// What has been seen of Zendesk's `filter[created_at][]` bounds, which are undocumented: a bound
/// is known *inclusive* once a record of its very second was served for a query bounded there
/// (`true`); nothing proves a bound exclusive, so `None` means "not known" and counts keep
/// querying one second wider on that side and taking its records off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownBounds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_inclusive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper_inclusive: Option<bool>,
}

impl KnownBounds {
    /// Both bounds are known to include their second: a range can be asked exactly.
    pub fn both_inclusive(self) -> bool {
        self.lower_inclusive == Some(true) && self.upper_inclusive == Some(true)
    }
}

/// [`KnownBounds`] shared by every count of one client: learned once, used by all.
#[derive(Debug, Default)]
pub struct CreatedAtBounds(std::sync::Mutex<KnownBounds>);

impl CreatedAtBounds {
    /// What is known now.
    pub fn known(&self) -> KnownBounds {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes what an earlier run learned (the lake keeps it).
    pub fn assume(&self, known: KnownBounds) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = known;
    }

    /// Records that the lower (`lower`) or upper bound was seen to include its second.
    pub fn learn_inclusive(&self, lower: bool) {
        let mut known = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let side = if lower {
            &mut known.lower_inclusive
        } else {
            &mut known.upper_inclusive
        };
        if *side != Some(true) {
            tracing::info!(
                bound = if lower { "lower" } else { "upper" },
                "Zendesk served a record of the bound's own second: filter[created_at][] includes it"
            );
            *side = Some(true);
        }
    }
}

/// The API's record filters (everything but `created_at`). Part of a dataset's identity: a lake
/// exported with filters holds only the matching records, so the filters are pinned with it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
}

impl Filters {
    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        *self == Filters::default()
    }

    /// The filters as query pairs. One action is sent as `filter[action]`, several as repeated
    /// `filter[action][]`, as the API documents.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        match self.actions.as_slice() {
            [] => {}
            [one] => pairs.push(("filter[action]", one.clone())),
            many => pairs.extend(many.iter().map(|a| ("filter[action][]", a.clone()))),
        }
        if let Some(t) = &self.source_type {
            pairs.push(("filter[source_type]", t.clone()));
        }
        if let Some(id) = self.source_id {
            pairs.push(("filter[source_id]", id.to_string()));
        }
        if let Some(id) = self.actor_id {
            pairs.push(("filter[actor_id]", id.to_string()));
        }
        if let Some(ip) = &self.ip_address {
            pairs.push(("filter[ip_address]", ip.clone()));
        }
        pairs
    }

    /// Checks what the API would refuse with a 400 anyway.
    pub fn validate(&self) -> Result<(), FilterError> {
        if self.source_id.is_some() && self.source_type.is_none() {
            return Err(FilterError::SourceIdWithoutType);
        }
        if self.actions.iter().any(|a| a.trim().is_empty()) {
            return Err(FilterError::EmptyAction);
        }
        if let Some(ip) = &self.ip_address {
            ip.parse::<std::net::IpAddr>()
                .map_err(|_| FilterError::NotAnIp(ip.clone()))?;
        }
        Ok(())
    }
}

/// A filter the API would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("--filter-source-id needs --filter-source-type (the API requires both)")]
    SourceIdWithoutType,
    #[error("--filter-action must not be empty")]
    EmptyAction,
    #[error("--filter-ip-address {0:?} is not an IP address")]
    NotAnIp(String),
}

/// The `filter[created_at][]` pair for `[start, end]` (UTC seconds), start first.
pub fn created_at_pairs(start: i64, end: i64) -> [(&'static str, String); 2] {
    [
        ("filter[created_at][]", format_rfc3339(start)),
        ("filter[created_at][]", format_rfc3339(end)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_at_is_sent_twice_in_order() {
        let pairs = created_at_pairs(0, 86_400);
        assert_eq!(
            pairs[0],
            ("filter[created_at][]", "1970-01-01T00:00:00Z".into())
        );
        assert_eq!(
            pairs[1],
            ("filter[created_at][]", "1970-01-02T00:00:00Z".into())
        );
        let mut url = url::Url::parse("http://127.0.0.1/api/v2/audit_logs").unwrap();
        url.query_pairs_mut()
            .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
        let back: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(back.len(), 2, "both bounds survive encoding: {url}");
    }

    #[test]
    fn actions_use_the_array_form_only_for_several() {
        let one = Filters {
            actions: vec!["login".into()],
            ..Filters::default()
        };
        assert_eq!(one.pairs(), [("filter[action]", "login".to_string())]);
        let two = Filters {
            actions: vec!["login".into(), "update".into()],
            actor_id: Some(-1),
            ..Filters::default()
        };
        assert_eq!(
            two.pairs(),
            [
                ("filter[action][]", "login".to_string()),
                ("filter[action][]", "update".to_string()),
                ("filter[actor_id]", "-1".to_string())
            ]
        );
    }

    #[test]
    fn validation_catches_what_the_api_refuses() {
        let f = Filters {
            source_id: Some(1),
            ..Filters::default()
        };
        assert_eq!(f.validate(), Err(FilterError::SourceIdWithoutType));
        let f = Filters {
            ip_address: Some("nope".into()),
            ..Filters::default()
        };
        assert!(f.validate().is_err());
        assert!(Filters::default().validate().is_ok());
    }
}
