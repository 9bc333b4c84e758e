//! The JSON side of validation: a line read straight from its text into
//! just the fields validation looks at, and every other value checked as
//! strictly as building it would, without building it.

use std::borrow::Cow;

use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Keys that would redirect the call, swap its credentials or otherwise let
/// a line steer the gateway's upstream connection (OpenAI SDK and LiteLLM
/// spellings). They are refused at the top level of a line and in its body;
/// the comparison ignores ASCII case.
#[rustfmt::skip]
const FORBIDDEN_KEYS: &[&str] = &[
    "api_base", "base_url", "api_key", "api_version", "api_type", "organization",
    "extra_headers", "headers", "extra_query", "custom_llm_provider", "litellm_params",
    "user_api_key", "azure_ad_token", "azure_ad_token_provider", "aws_access_key_id",
    "aws_secret_access_key", "aws_session_token", "aws_region_name", "aws_profile_name",
    "vertex_credentials", "vertex_project", "vertex_location",
];

pub(super) fn is_forbidden(key: &str) -> bool {
    (7..=23).contains(&key.len()) && FORBIDDEN_KEYS.iter().any(|f| f.eq_ignore_ascii_case(key))
}

/// How a found value reads in a message: strings quoted, others by kind.
pub(super) fn describe(value: &Option<Field<'_>>) -> String {
    match value {
        None => "missing".to_string(),
        Some(Field::Str(s)) => format!("{s:?}"),
        Some(other) => describe_kind(other).to_string(),
    }
}

pub(super) fn describe_kind(field: &Field<'_>) -> &'static str {
    match field {
        Field::Str(_) => "a string",
        Field::Bool(_) => "a boolean",
        Field::Kind(kind) => kind,
        Field::Kept(_) | Field::Obj(_) => "an object",
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The keys picked out of a line (their order is the order of
/// [`Obj::fields`]) and of its body.
const LINE_KEYS: &[&str] = &["custom_id", "method", "url", "body"];
const BODY_KEYS: &[&str] = &["model", "stream", "background"];

/// A JSON value as far as validation cares. Parsed straight from the text
/// with borrowed strings: building a full [`Value`] tree (allocating and
/// hashing every key) costs more than everything else together, so only a
/// body that is to be kept is built.
pub(super) enum Field<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    /// Anything else, by the name of its kind.
    Kind(&'static str),
    /// A body built in full, to be returned.
    Kept(Map<String, Value>),
    /// A line or a body: its picked keys and forbidden keys.
    Obj(Box<Obj<'a>>),
}

/// An object's values under the picked keys, and its forbidden keys.
#[derive(Default)]
pub(super) struct Obj<'a> {
    pub fields: [Option<Field<'a>>; 4],
    pub forbidden: Vec<Cow<'a, str>>,
}

/// The facts of a body that was built in full.
pub(super) fn body_facts(body: &Map<String, Value>) -> Obj<'_> {
    let field = |key: &str| {
        body.get(key).map(|v| match v {
            Value::String(s) => Field::Str(Cow::Borrowed(s.as_str())),
            Value::Bool(b) => Field::Bool(*b),
            other => Field::Kind(kind(other)),
        })
    };
    let forbidden = body.keys().filter(|k| is_forbidden(k));
    Obj {
        fields: [field("model"), field("stream"), field("background"), None],
        forbidden: forbidden.map(|k| Cow::Borrowed(k.as_str())).collect(),
    }
}

/// Deserializes a [`Field`]. An object is looked into only when `pick` names
/// keys (the line itself and its body), else reduced to its kind.
#[derive(Clone, Copy)]
pub(super) struct FieldSeed {
    pick: &'static [&'static str],
    keep_body: bool,
}

impl FieldSeed {
    const SCALAR: FieldSeed = FieldSeed {
        pick: &[],
        keep_body: false,
    };
    pub fn line(keep_body: bool) -> Self {
        FieldSeed {
            pick: LINE_KEYS,
            keep_body,
        }
    }
}

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Field<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Field<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed {
    type Value = Field<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Field<'de>, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Field<'de>, E> {
        Ok(Field::Str(Cow::Owned(v.to_string())))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Field<'de>, E> {
        Ok(Field::Bool(v))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Field<'de>, E> {
        Ok(Field::Kind("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Field<'de>, E> {
        Ok(Field::Kind("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Field<'de>, E> {
        Ok(Field::Kind("a number"))
    }
    fn visit_unit<E>(self) -> Result<Field<'de>, E> {
        Ok(Field::Kind("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field<'de>, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Field::Kind("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field<'de>, A::Error> {
        if self.pick.is_empty() {
            while map.next_entry::<Strict, Strict>()?.is_some() {}
            return Ok(Field::Kind("an object"));
        }
        let mut obj = Obj::default();
        while let Some(key) = map.next_key_seed(Self::SCALAR)? {
            let Field::Str(key) = key else { continue };
            let slot = self.pick.iter().position(|k| *k == key);
            let value = match slot {
                // The line's body: built in full, or looked into.
                Some(3) if self.keep_body => match map.next_value::<Value>()? {
                    Value::Object(body) => Field::Kept(body),
                    other => Field::Kind(kind(&other)),
                },
                Some(3) => map.next_value_seed(FieldSeed {
                    pick: BODY_KEYS,
                    keep_body: false,
                })?,
                Some(_) => map.next_value_seed(Self::SCALAR)?,
                None => {
                    map.next_value::<Strict>()?;
                    if is_forbidden(&key) {
                        obj.forbidden.push(key);
                    }
                    continue;
                }
            };
            if let Some(slot) = slot.and_then(|i| obj.fields.get_mut(i)) {
                *slot = Some(value);
            }
        }
        Ok(Field::Obj(Box::new(obj)))
    }
}

/// A value checked and dropped. Unlike serde's `IgnoredAny`, which only
/// skims (it lets `1e400`, lone surrogate escapes and nesting past the
/// recursion limit through), this goes through `deserialize_any` like
/// building a [`Value`] does, so the inspect-only pass accepts exactly what
/// the executor can parse and send: a line that validation passes never
/// turns out unsendable later.
struct Strict;

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        while map.next_entry::<Strict, Strict>()?.is_some() {}
        Ok(Strict)
    }
}
