//! Decoding API pages into typed rows, against the declared schema.
//!
//! A page is parsed once with serde visitors that borrow from the page bytes: no `serde_json::Value`
//! trees and no per-record allocation for the common case. Each record becomes a [`Row`] of typed
//! cells in schema order, plus the fields the schema does not know, kept verbatim as a JSON object
//! in the extra column. A documented field with another JSON type fails the page with an error that
//! names the record and the field: nothing corrupt is ever handed on.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::table::schema::{ColumnType, Schema};

/// One typed cell of a row, in the schema's column type.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell<'a> {
    Null,
    Int(i64),
    Str(Cow<'a, str>),
    /// Milliseconds since the epoch, UTC.
    Timestamp(i64),
}

/// One record, typed. `cells` follow the schema's field order.
#[derive(Debug)]
pub struct Row<'r, 'a> {
    pub id: i64,
    /// Milliseconds since the epoch, UTC.
    pub created_at: i64,
    pub cells: &'r [Cell<'a>],
    /// The unknown fields as one JSON object text, or `None` when there are none.
    pub extra: Option<&'r str>,
}

/// A record that does not fit the schema, or a page that is not an audit-log page.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("page is not valid audit-log JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("record {record}: field {field:?} is JSON {found}, the schema says {expected}")]
    FieldType {
        record: RecordId,
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("record {record}: field {field:?} is {value:?}, not a UTC timestamp")]
    Timestamp {
        record: RecordId,
        field: String,
        value: String,
    },
    #[error("record {record}: required field {field:?} is missing or null")]
    Missing { record: RecordId, field: String },
}

/// A record's id for error messages; absent when the id itself is what is wrong.
#[derive(Debug, Clone, Copy)]
pub struct RecordId(pub Option<i64>);

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, "id {id}"),
            None => write!(f, "without a usable id"),
        }
    }
}

/// Decodes every record of a list page (`{"audit_logs": [...], ...}`) and hands each to `sink`.
/// Returns the number of records on the page.
pub fn decode_page<F>(body: &[u8], schema: &Schema, sink: F) -> Result<usize, DecodeError>
where
    F: for<'r, 'a> FnMut(Row<'r, 'a>),
{
    let mut state = State::new(schema, sink);
    let mut de = serde_json::Deserializer::from_str(utf8(body)?);
    let result = PageSeed(&mut state)
        .deserialize(&mut de)
        .and_then(|()| de.end());
    if let Some(err) = state.error.take() {
        return Err(err);
    }
    result?;
    Ok(state.count)
}

/// The page as text. One check of the whole page is much cheaper than the check of every string
/// that parsing bytes does.
fn utf8(body: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(body).map_err(|e| {
        DecodeError::Json(de::Error::custom(format_args!(
            "invalid UTF-8 at byte {}",
            e.valid_up_to()
        )))
    })
}

/// What the visitors share: the schema, reusable scratch space (so a record costs no
/// allocation unless a string has escapes) and the first schema error.
struct State<'s, 'de, F> {
    schema: &'s Schema,
    sink: F,
    count: usize,
    error: Option<DecodeError>,
    /// The position the next key most likely has: records list their keys in one order, so this
    /// turns the field lookup into one string comparison.
    next_guess: usize,
    extra: String,
    values: Vec<Value<'de>>,
    cells: Vec<Cell<'de>>,
}

impl<'s, 'de, F> State<'s, 'de, F>
where
    F: for<'r, 'a> FnMut(Row<'r, 'a>),
{
    fn new(schema: &'s Schema, sink: F) -> Self {
        let mut values = Vec::with_capacity(schema.fields.len());
        values.resize_with(schema.fields.len(), || Value::Absent);
        State {
            schema,
            sink,
            count: 0,
            error: None,
            next_guess: 0,
            extra: String::new(),
            values,
            cells: Vec::with_capacity(schema.fields.len()),
        }
    }

    fn position(&mut self, key: &str) -> Option<usize> {
        let fields = &self.schema.fields;
        let guess = self.next_guess;
        let found = if guess < fields.len() && fields[guess].name == key {
            Some(guess)
        } else {
            fields.iter().position(|f| f.name == key)
        };
        if let Some(i) = found {
            self.next_guess = i + 1;
        }
        found
    }

    /// Type-checks one record's values and hands the row on. Errors are kept in `self.error` so
    /// that they can carry the record id, which may come after the bad field.
    fn finish_record(&mut self, has_extra: bool) -> bool {
        let id = match self.values[self.schema.id_index] {
            Value::Int(id) => Some(id),
            _ => None,
        };
        let record = RecordId(id);
        self.cells.clear();
        let mut created_at = None;
        for (spec, value) in self.schema.fields.iter().zip(self.values.iter_mut()) {
            let value = std::mem::replace(value, Value::Absent);
            let cell = match (spec.column, value) {
                (_, Value::Absent | Value::Null) => Cell::Null,
                (ColumnType::Int64, Value::Int(n)) => Cell::Int(n),
                (ColumnType::Utf8, Value::Str(s)) => Cell::Str(s),
                (ColumnType::TimestampMsUtc, Value::Str(s)) => match parse_timestamp_ms(&s) {
                    Some(t) => {
                        created_at = Some(t);
                        Cell::Timestamp(t)
                    }
                    None => {
                        self.error = Some(DecodeError::Timestamp {
                            record,
                            field: spec.name.clone(),
                            value: s.into_owned(),
                        });
                        return false;
                    }
                },
                (column, other) => {
                    self.error = Some(DecodeError::FieldType {
                        record,
                        field: spec.name.clone(),
                        expected: match column {
                            ColumnType::Int64 => "integer",
                            ColumnType::Utf8 | ColumnType::TimestampMsUtc => "string",
                        },
                        found: other.json_type(),
                    });
                    return false;
                }
            };
            if matches!(cell, Cell::Null) && !spec.nullable {
                self.error = Some(DecodeError::Missing {
                    record,
                    field: spec.name.clone(),
                });
                return false;
            }
            self.cells.push(cell);
        }
        let (Some(id), Some(created_at)) = (id, created_at) else {
            unreachable!("id and created_at are non-nullable, checked above");
        };
        let extra = if has_extra {
            self.extra.push('}');
            Some(self.extra.as_str())
        } else {
            None
        };
        (self.sink)(Row {
            id,
            created_at,
            cells: &self.cells,
            extra,
        });
        self.count += 1;
        true
    }
}

/// A JSON value as far as the schema cares: scalars typed, containers only noted.
enum Value<'a> {
    Absent,
    Null,
    Int(i64),
    /// Integers beyond `i64` and non-integral numbers: both are the wrong type for an int64 column.
    OtherNumber,
    Bool,
    Str(Cow<'a, str>),
    Array,
    Object,
}

impl Value<'_> {
    fn json_type(&self) -> &'static str {
        match self {
            Value::Absent | Value::Null => "null",
            Value::Int(_) | Value::OtherNumber => "number",
            Value::Bool => "boolean",
            Value::Str(_) => "string",
            Value::Array => "array",
            Value::Object => "object",
        }
    }
}

impl<'de> de::Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Value<'de>, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> Result<Value<'de>, E> {
                Ok(Value::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Value<'de>, E> {
                Ok(Value::Bool)
            }
            fn visit_i64<E>(self, n: i64) -> Result<Value<'de>, E> {
                Ok(Value::Int(n))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Value<'de>, E> {
                Ok(i64::try_from(n).map_or(Value::OtherNumber, Value::Int))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Value<'de>, E> {
                Ok(Value::OtherNumber)
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Value<'de>, E> {
                Ok(Value::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Value<'de>, E> {
                Ok(Value::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Value<'de>, E> {
                Ok(Value::Str(Cow::Owned(s)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Value::Array)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Value::Object)
            }
        }
        d.deserialize_any(V)
    }
}

/// An object key, borrowed from the page unless it has escapes. (serde's own `Cow<str>` always
/// allocates: it borrows only for `#[serde(borrow)]` fields.)
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

struct PageSeed<'x, 's, 'de, F>(&'x mut State<'s, 'de, F>);

impl<'de, F> DeserializeSeed<'de> for PageSeed<'_, '_, 'de, F>
where
    F: for<'r, 'a> FnMut(Row<'r, 'a>),
{
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F> Visitor<'de> for PageSeed<'_, '_, 'de, F>
where
    F: for<'r, 'a> FnMut(Row<'r, 'a>),
{
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with an \"audit_logs\" array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if key.0 == "audit_logs" {
                map.next_value_seed(RecordsSeed(&mut *self.0))?;
                seen = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if !seen {
            return Err(de::Error::missing_field("audit_logs"));
        }
        Ok(())
    }
}

struct RecordsSeed<'x, 's, 'de, F>(&'x mut State<'s, 'de, F>);

impl<'de, F> DeserializeSeed<'de> for RecordsSeed<'_, '_, 'de, F>
where
    F: for<'r, 'a> FnMut(Row<'r, 'a>),
{
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F> Visitor<'de> for RecordsSeed<'_, '_, 'de, F>
where
    F: for<'r, 'a> FnMut(Row<'r, 'a>),
{
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of audit-log records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(RecordSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

struct RecordSeed<'x, 's, 'de, F>(&'x mut State<'s, 'de, F>);

impl<'de, F> DeserializeSeed<'de> for RecordSeed<'_, '_, 'de, F>
where
    F: for<'r, 'a> FnMut(Row<'r, 'a>),
{
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F> Visitor<'de> for RecordSeed<'_, '_, 'de, F>
where
    F: for<'r, 'a> FnMut(Row<'r, 'a>),
{
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an audit-log record object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        state.next_guess = 0;
        state.extra.clear();
        let mut has_extra = false;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match state.position(&key.0) {
                Some(i) => state.values[i] = map.next_value()?,
                None => {
                    let raw: &'de RawValue = map.next_value()?;
                    state.extra.push(if has_extra { ',' } else { '{' });
                    // Keys are re-escaped; values are kept byte for byte as the API sent them.
                    state
                        .extra
                        .push_str(&serde_json::to_string(&*key.0).map_err(de::Error::custom)?);
                    state.extra.push(':');
                    state.extra.push_str(raw.get());
                    has_extra = true;
                }
            }
        }
        if state.finish_record(has_extra) {
            Ok(())
        } else {
            Err(de::Error::custom("record does not fit the schema"))
        }
    }
}

/// Parses an RFC 3339 timestamp into milliseconds since the epoch (a finer fraction, which the
/// API does not send, is truncated). The API's own form,
/// `YYYY-MM-DDTHH:MM:SSZ`, takes a fast path; anything else RFC 3339 goes through chrono.
pub fn parse_timestamp_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
    {
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            b[r].iter().try_fold(0i64, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
            })
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let valid_date = (1..=12).contains(&mo) && d >= 1 && d <= days_in_month(y, mo);
        if !valid_date || h > 23 || mi > 59 || sec > 59 {
            return None;
        }
        let seconds = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec;
        return Some(seconds * 1_000);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Owned {
        id: i64,
        created_at: i64,
        cells: Vec<Cell<'static>>,
        extra: Option<String>,
    }

    fn decode(body: &str) -> Result<Vec<Owned>, DecodeError> {
        let mut rows = Vec::new();
        decode_page(body.as_bytes(), Schema::get(), |row| {
            rows.push(Owned {
                id: row.id,
                created_at: row.created_at,
                cells: row
                    .cells
                    .iter()
                    .map(|c| match c {
                        Cell::Str(s) => Cell::Str(Cow::Owned(s.to_string())),
                        Cell::Null => Cell::Null,
                        Cell::Int(n) => Cell::Int(*n),
                        Cell::Timestamp(t) => Cell::Timestamp(*t),
                    })
                    .collect(),
                extra: row.extra.map(str::to_string),
            })
        })?;
        Ok(rows)
    }

    fn cell<'r>(row: &'r Owned, name: &str) -> &'r Cell<'static> {
        &row.cells[Schema::get().position(name).unwrap()]
    }

    #[test]
    fn a_full_record_decodes_with_exact_types() {
        let body = r#"{"audit_logs":[{"url":"https://acme.zendesk.com/api/v2/audit_logs/9007199254740993.json",
            "id":9007199254740993,"action_label":"Updated","actor_id":-1,"source_id":9223372036854775807,
            "source_type":"user","source_label":"Zoë \"Z\" 🦀","action":"update",
            "change_description":"line1\nline2 {:a=>\"b\"} &amp;","ip_address":null,
            "actor_name":"System","created_at":"2024-02-29T23:59:59Z"}],
            "meta":{"has_more":false,"after_cursor":null,"before_cursor":null},"links":{"next":null,"prev":null}}"#;
        let rows = decode(body).unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.id, 9_007_199_254_740_993);
        assert_eq!(row.created_at, 1_709_251_199_000);
        assert_eq!(cell(row, "actor_id"), &Cell::Int(-1));
        assert_eq!(cell(row, "source_id"), &Cell::Int(i64::MAX));
        assert_eq!(cell(row, "ip_address"), &Cell::Null);
        assert_eq!(
            cell(row, "change_description"),
            &Cell::Str("line1\nline2 {:a=>\"b\"} &amp;".into())
        );
        assert_eq!(cell(row, "source_label"), &Cell::Str("Zoë \"Z\" 🦀".into()));
        assert_eq!(row.extra, None);
    }

    #[test]
    fn absent_fields_are_null_and_unknown_fields_are_kept_verbatim() {
        let body = r#"{"audit_logs":[{"id":1,"created_at":"2024-01-01T00:00:00Z",
            "risk_score":1.50,"meta\"data":{"a":[1,2,{"b":null}]},"flag":true}]}"#;
        let rows = decode(body).unwrap();
        let row = &rows[0];
        assert_eq!(cell(row, "action"), &Cell::Null);
        let extra = row.extra.as_deref().unwrap();
        assert_eq!(
            extra,
            r#"{"risk_score":1.50,"meta\"data":{"a":[1,2,{"b":null}]},"flag":true}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(extra).unwrap();
        assert_eq!(parsed["flag"], true);
    }

    #[test]
    fn a_known_field_with_another_type_names_record_and_field() {
        let body =
            r#"{"audit_logs":[{"actor_id":"42","id":7,"created_at":"2024-01-01T00:00:00Z"}]}"#;
        let err = decode(body).unwrap_err().to_string();
        assert_eq!(
            err,
            "record id 7: field \"actor_id\" is JSON string, the schema says integer"
        );
        let body = r#"{"audit_logs":[{"id":7.5,"created_at":"2024-01-01T00:00:00Z"}]}"#;
        let err = decode(body).unwrap_err().to_string();
        assert!(err.contains("field \"id\" is JSON number"), "{err}");
        let body =
            r#"{"audit_logs":[{"id":7,"action":["a"],"created_at":"2024-01-01T00:00:00Z"}]}"#;
        assert!(decode(body).unwrap_err().to_string().contains("JSON array"));
        let body =
            r#"{"audit_logs":[{"id":18446744073709551615,"created_at":"2024-01-01T00:00:00Z"}]}"#;
        assert!(decode(body).is_err(), "ids beyond i64 must not wrap");
    }

    #[test]
    fn missing_key_fields_and_bad_timestamps_fail() {
        let err = decode(r#"{"audit_logs":[{"id":7}]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("required field \"created_at\""), "{err}");
        let err = decode(r#"{"audit_logs":[{"id":7,"created_at":"2024-02-30T00:00:00Z"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a UTC timestamp"), "{err}");
    }

    #[test]
    fn truncated_pages_fail_as_json_errors() {
        let body = r#"{"audit_logs":[{"id":1,"created_at":"2024-01-01T00:00:00Z"},{"id":2,"#;
        assert!(matches!(decode(body), Err(DecodeError::Json(_))));
        assert!(matches!(
            decode(r#"{"records":[]}"#),
            Err(DecodeError::Json(_))
        ));
    }

    #[test]
    fn invalid_utf8_fails_as_a_json_error() {
        let mut body =
            br#"{"audit_logs":[{"id":1,"created_at":"2024-01-01T00:00:00Z","action":"x"}]}"#
                .to_vec();
        let at = body.iter().position(|&b| b == b'x').unwrap();
        body[at] = 0xff;
        let err = decode_page(&body, Schema::get(), |_| {}).unwrap_err();
        assert!(matches!(err, DecodeError::Json(_)), "{err}");
        assert!(err.to_string().contains(&format!("byte {at}")), "{err}");
    }

    #[test]
    fn the_timestamp_fast_path_agrees_with_chrono() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T12:34:56Z",
            "2024-12-31T23:59:59Z",
            "1969-12-31T23:59:59Z",
            "2100-03-01T00:00:00Z",
        ] {
            let slow = chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_millis();
            assert_eq!(parse_timestamp_ms(s), Some(slow), "{s}");
        }
        assert_eq!(
            parse_timestamp_ms("2024-01-01T01:00:00.5+01:00"),
            Some(1_704_067_200_500)
        );
        assert_eq!(parse_timestamp_ms("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_timestamp_ms("2024-01-01T24:00:00Z"), None);
    }
}
