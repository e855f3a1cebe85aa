//! A serde `Deserializer` over awsQuery's flattened parameters, so that an operation's input
//! is a plain `#[derive(Deserialize)]` struct instead of hand-written `QueryParams` look-ups.
//!
//! The mapping is botocore's query serializer read backwards:
//!
//! | Rust type                     | parameters                                         |
//! |-------------------------------|----------------------------------------------------|
//! | struct field `F` at `P`       | `P.F` (top level: `F`)                             |
//! | `Vec<T>` at `P`               | `P.member.1`, `P.member.2`, … (ordered by number); `P=` is the empty list |
//! | `BTreeMap<K, V>` at `P`       | `P.entry.N.key`, `P.entry.N.value`                 |
//! | `String`, `&str`              | the value as sent                                  |
//! | `bool`                        | `true` / `false`                                   |
//! | integers, `f64`               | decimal text                                       |
//! | `Option<T>`                   | `None` when neither `P` nor `P.…` is present       |
//! | unit-variant enum             | the variant name (`#[serde(rename)]` as needed)    |
//!
//! Parameters that no field names (`Action`, `Version`, `X-Amz-*`) are ignored. A `Vec` or map
//! field that may be absent needs `#[serde(default)]` or `Option`. `#[serde(flatten)]` works
//! only at the top level.
//!
//! Errors are AWS's `ValidationError`s in the wording of the hand-written helpers they replace
//! ([`QueryParams::required`](super::QueryParams::required), `int`, `bool`). Member paths in
//! messages follow AWS: `Tags.member.1.Key` is reported as `tags.1.member.key`.
//!
//! Cost is bounded by the number of parameters, never by the numbers in them: list indices
//! are parsed, sorted and used only as keys (`Name.member.4000000000` is one element).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::error::AwsError;
use crate::service::Protocol;
use crate::validate::member_path;

type Params = BTreeMap<String, String>;

/// Decodes the whole parameter set into `T`.
pub(super) fn decode<'de, T: de::Deserialize<'de>>(params: &'de Params) -> Result<T, AwsError> {
    T::deserialize(Value {
        params,
        path: String::new(),
    })
    .map_err(Error::into_aws)
}

/// A decoding failure, located at the raw parameter name it concerns once known.
#[derive(Debug)]
pub struct Error(Kind);

#[derive(Debug)]
enum Kind {
    /// A required struct member is absent; `path` is the raw name (`Tags.member.1.Key`).
    /// `located` is false while only the field's own name is known.
    Missing { path: String, located: bool },
    /// Already in AWS's words.
    Aws(AwsError),
    UnknownVariant {
        value: String,
        expected: &'static [&'static str],
        path: Option<String>,
    },
    Custom {
        message: String,
        path: Option<String>,
    },
}

impl Error {
    /// Attaches the raw parameter name of the value being decoded, unless an inner value
    /// already did.
    fn locate(self, path: &str) -> Error {
        Error(match self.0 {
            Kind::Missing {
                path: field,
                located: false,
            } => Kind::Missing {
                path: join(path, &field),
                located: true,
            },
            Kind::UnknownVariant {
                value,
                expected,
                path: None,
            } => Kind::UnknownVariant {
                value,
                expected,
                path: Some(path.to_string()),
            },
            Kind::Custom {
                message,
                path: None,
            } => Kind::Custom {
                message,
                path: Some(path.to_string()),
            },
            other => other,
        })
    }

    fn missing_at(path: &str) -> Error {
        Error(Kind::Missing {
            path: path.to_string(),
            located: true,
        })
    }

    fn into_aws(self) -> AwsError {
        let validation = |m: String| AwsError::validation(Protocol::AwsQuery, m);
        match self.0 {
            Kind::Missing { path, .. } => validation(format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                aws_path(&path)
            )),
            Kind::Aws(e) => e,
            Kind::UnknownVariant {
                value,
                expected,
                path,
            } => validation(format!(
                "1 validation error detected: Value '{value}' at '{}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                aws_path(path.as_deref().unwrap_or_default()),
                expected.join(", ")
            )),
            Kind::Custom { message, path } => validation(format!(
                "1 validation error detected: Value at '{}' failed to satisfy constraint: {message}",
                aws_path(path.as_deref().unwrap_or_default())
            )),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Missing { path, .. } => write!(f, "missing member {path}"),
            Kind::Aws(e) => e.fmt(f),
            Kind::UnknownVariant { path, .. } => {
                write!(
                    f,
                    "unknown enum value at {}",
                    path.as_deref().unwrap_or("?")
                )
            }
            Kind::Custom { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(Kind::Custom {
            message: msg.to_string(),
            path: None,
        })
    }

    fn missing_field(field: &'static str) -> Self {
        Error(Kind::Missing {
            path: field.to_string(),
            located: false,
        })
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Error(Kind::UnknownVariant {
            value: variant.to_string(),
            expected,
            path: None,
        })
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The member path AWS prints for a raw parameter name: each name camelCased, and
/// `member.N` / `entry.N` turned into `N.member` / `N.entry` (`Tags.member.1.Key` →
/// `tags.1.member.key`).
pub(crate) fn aws_path(raw: &str) -> String {
    let segments: Vec<&str> = raw.split('.').collect();
    let mut out: Vec<String> = Vec::with_capacity(segments.len());
    let mut i = 0;
    while i < segments.len() {
        let seg = segments[i];
        match segments.get(i + 1) {
            Some(next)
                if (seg == "member" || seg == "entry")
                    && !next.is_empty()
                    && next.bytes().all(|b| b.is_ascii_digit()) =>
            {
                out.push((*next).to_string());
                out.push(seg.to_string());
                i += 2;
            }
            _ => {
                out.push(member_path(seg));
                i += 1;
            }
        }
    }
    out.join(".")
}

/// The keys in `params` that start with `prefix` (all of them for an empty prefix).
fn under<'de>(params: &'de Params, prefix: &str) -> impl Iterator<Item = &'de str> {
    let owned = prefix.to_string();
    params
        .range::<str, _>((
            std::ops::Bound::Included(prefix),
            std::ops::Bound::Unbounded,
        ))
        .map(|(k, _)| k.as_str())
        .take_while(move |k| k.starts_with(owned.as_str()))
}

/// Whether anything is sent for the member at `path`: the parameter itself or any below it.
fn present(params: &Params, path: &str) -> bool {
    params.contains_key(path) || under(params, &format!("{path}.")).next().is_some()
}

/// The numbered elements below `prefix` (`P.member.` or `P.entry.`): each distinct index
/// segment once, in numeric order. Segments that are not numbers are ignored.
fn indexed<'de>(params: &'de Params, prefix: &str) -> Vec<&'de str> {
    let mut items: Vec<(u32, &'de str)> = under(params, prefix)
        .filter_map(|k| {
            let rest = &k[prefix.len()..];
            let seg = rest.split('.').next().unwrap_or(rest);
            seg.parse::<u32>().ok().map(|i| (i, seg))
        })
        .collect();
    items.sort_unstable();
    items.dedup();
    items.into_iter().map(|(_, seg)| seg).collect()
}

/// The value at one raw parameter path (the empty path is the whole request).
struct Value<'de> {
    params: &'de Params,
    path: String,
}

impl<'de> Value<'de> {
    fn at(&self, path: String) -> Value<'de> {
        Value {
            params: self.params,
            path,
        }
    }

    fn exact(&self) -> Option<&'de str> {
        if self.path.is_empty() {
            return None;
        }
        self.params.get(&self.path).map(String::as_str)
    }

    fn text(&self) -> Result<&'de str, Error> {
        self.exact().ok_or_else(|| Error::missing_at(&self.path))
    }

    fn integer<T: TryFrom<i64>>(&self) -> Result<T, Error> {
        let v = self.text()?;
        v.trim()
            .parse::<i64>()
            .ok()
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| {
                Error(Kind::Aws(AwsError::validation(
                    Protocol::AwsQuery,
                    format!(
                        "Value '{v}' for parameter {} is invalid. It should be an integer.",
                        self.path
                    ),
                )))
            })
    }

    fn float(&self) -> Result<f64, Error> {
        let v = self.text()?;
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| {
                Error(Kind::Aws(AwsError::validation(
                    Protocol::AwsQuery,
                    format!(
                        "Value '{v}' for parameter {} is invalid. It should be a number.",
                        self.path
                    ),
                )))
            })
    }

    fn boolean(&self) -> Result<bool, Error> {
        match self.text()? {
            "true" => Ok(true),
            "false" => Ok(false),
            v => Err(Error(Kind::Aws(AwsError::validation(
                Protocol::AwsQuery,
                format!(
                    "Value '{v}' for parameter {} is invalid. It should be a boolean.",
                    self.path
                ),
            )))),
        }
    }

    fn located<T>(&self, r: Result<T, Error>) -> Result<T, Error> {
        r.map_err(|e| e.locate(&self.path))
    }
}

macro_rules! integer {
    ($($method:ident => $visit:ident: $ty:ty),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                let n: $ty = self.integer()?;
                visitor.$visit(n)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Value<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let prefix = if self.path.is_empty() {
            String::new()
        } else {
            format!("{}.", self.path)
        };
        let has_children = under(self.params, &prefix).next().is_some();
        match self.exact() {
            Some(v) if !has_children => visitor.visit_borrowed_str(v),
            _ => {
                let mut names: Vec<&'de str> = under(self.params, &prefix)
                    .map(|k| {
                        let rest = &k[prefix.len()..];
                        rest.split('.').next().unwrap_or(rest)
                    })
                    .collect();
                names.sort_unstable();
                names.dedup();
                let r = visitor.visit_map(NamedAccess {
                    value: &self,
                    names: names.into_iter(),
                    pending: None,
                });
                self.located(r)
            }
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_bool(self.boolean()?)
    }

    integer! {
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(self.float()?)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(self.float()?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let r = visitor.visit_borrowed_str(self.text()?);
        self.located(r)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let r = visitor.visit_borrowed_str(self.text()?);
        self.located(r)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let r = visitor.visit_borrowed_bytes(self.text()?.as_bytes());
        self.located(r)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.path.is_empty() || present(self.params, &self.path) {
            visitor.visit_some(self)
        } else {
            visitor.visit_none()
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    /// `P.member.N`, numerically ordered; `P=` (or nothing below `P`) is the empty list.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let prefix = format!("{}.member.", self.path);
        let items = indexed(self.params, &prefix);
        let r = visitor.visit_seq(ListAccess {
            value: &self,
            prefix: &prefix,
            items: items.into_iter(),
        });
        self.located(r)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    /// `P.entry.N.key` / `P.entry.N.value`. At the top level (`#[serde(flatten)]`, or a map
    /// of every parameter) each parameter is an entry.
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.path.is_empty() {
            let names: Vec<&'de str> = self.params.keys().map(String::as_str).collect();
            return visitor.visit_map(NamedAccess {
                value: &self,
                names: names.into_iter(),
                pending: None,
            });
        }
        let prefix = format!("{}.entry.", self.path);
        let items = indexed(self.params, &prefix);
        let r = visitor.visit_map(EntryAccess {
            value: &self,
            prefix: &prefix,
            items: items.into_iter(),
            pending: None,
        });
        self.located(r)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let r = visitor.visit_map(StructAccess {
            value: &self,
            fields: fields.iter(),
            pending: None,
        });
        self.located(r)
    }

    /// Unit variants only, by name: AWS's string enums.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let r = visitor.visit_enum(BorrowedStrDeserializer::<Error>::new(self.text()?));
        self.located(r)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

/// A structure's members, in declaration order, skipping those not sent.
struct StructAccess<'a, 'de> {
    value: &'a Value<'de>,
    fields: std::slice::Iter<'static, &'static str>,
    pending: Option<String>,
}

impl<'de> MapAccess<'de> for StructAccess<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        for field in self.fields.by_ref() {
            let path = join(&self.value.path, field);
            if present(self.value.params, &path) {
                self.pending = Some(path);
                return seed
                    .deserialize(BorrowedStrDeserializer::<Error>::new(field))
                    .map(Some);
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let path = self.pending.take().unwrap_or_default();
        seed.deserialize(self.value.at(path))
    }
}

/// Members by name (top-level maps, `deserialize_any`).
struct NamedAccess<'a, 'de> {
    value: &'a Value<'de>,
    names: std::vec::IntoIter<&'de str>,
    pending: Option<String>,
}

impl<'de> MapAccess<'de> for NamedAccess<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.names.next() {
            None => Ok(None),
            Some(name) => {
                self.pending = Some(join(&self.value.path, name));
                seed.deserialize(BorrowedStrDeserializer::<Error>::new(name))
                    .map(Some)
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let path = self.pending.take().unwrap_or_default();
        seed.deserialize(self.value.at(path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.names.len())
    }
}

struct ListAccess<'a, 'de> {
    value: &'a Value<'de>,
    prefix: &'a str,
    items: std::vec::IntoIter<&'de str>,
}

impl<'de> SeqAccess<'de> for ListAccess<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.items.next() {
            None => Ok(None),
            Some(index) => seed
                .deserialize(self.value.at(format!("{}{index}", self.prefix)))
                .map(Some),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct EntryAccess<'a, 'de> {
    value: &'a Value<'de>,
    prefix: &'a str,
    items: std::vec::IntoIter<&'de str>,
    pending: Option<&'de str>,
}

impl<'de> MapAccess<'de> for EntryAccess<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.items.next() {
            None => Ok(None),
            Some(index) => {
                self.pending = Some(index);
                seed.deserialize(self.value.at(format!("{}{index}.key", self.prefix)))
                    .map(Some)
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let index = self.pending.take().unwrap_or_default();
        seed.deserialize(self.value.at(format!("{}{index}.value", self.prefix)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::Deserialize;

    use super::super::QueryParams;
    use crate::error::AwsError;

    fn params(form: &str) -> QueryParams {
        QueryParams::parse(form.as_bytes()).unwrap_or_default()
    }

    fn err<T: std::fmt::Debug>(r: Result<T, AwsError>) -> (String, String) {
        match r {
            Ok(v) => (format!("unexpected success: {v:?}"), String::new()),
            Err(e) => (e.code.to_string(), e.message.unwrap_or_default()),
        }
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Tag {
        key: String,
        #[serde(default)]
        value: String,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct PolicyArn {
        // STS's `PolicyDescriptorType` member is lower-case on the wire.
        #[serde(rename = "arn")]
        arn: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Nested {
        inner: String,
        depth: Option<u8>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    enum StatusType {
        Active,
        Inactive,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct AssumeRole {
        role_arn: String,
        role_session_name: String,
        duration_seconds: Option<i32>,
        policy: Option<String>,
        #[serde(default)]
        policy_arns: Vec<PolicyArn>,
        #[serde(default)]
        tags: Vec<Tag>,
        transitive_tag_keys: Option<Vec<String>>,
        set_as_default: Option<bool>,
        ratio: Option<f64>,
        context: Option<BTreeMap<String, String>>,
        outer: Option<Nested>,
        status: Option<StatusType>,
    }

    const FULL: &str = "Action=AssumeRole&Version=2011-06-15&X-Amz-Date=20260101T000000Z\
        &RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fr&RoleSessionName=s\
        &DurationSeconds=+900&PolicyArns.member.2.arn=b&PolicyArns.member.1.arn=a\
        &Tags.member.10.Key=k10&Tags.member.10.Value=v10&Tags.member.2.Key=k2\
        &Tags.member.2.Value=v2&Tags.member.3.Key=k3&TransitiveTagKeys=&SetAsDefault=true\
        &Ratio=0.5&Context.entry.2.key=b&Context.entry.2.value=2&Context.entry.1.key=a\
        &Context.entry.1.value=1&Outer.Inner=i&Outer.Depth=7&Status=Inactive";

    #[test]
    fn every_shape_decodes_and_unknown_parameters_are_ignored() {
        let q = params(FULL);
        let input: Result<AssumeRole, _> = q.decode();
        let expected = AssumeRole {
            role_arn: "arn:aws:iam::123456789012:role/r".into(),
            role_session_name: "s".into(),
            duration_seconds: Some(900),
            policy: None,
            policy_arns: vec![
                PolicyArn {
                    arn: Some("a".into()),
                },
                PolicyArn {
                    arn: Some("b".into()),
                },
            ],
            tags: vec![
                Tag {
                    key: "k2".into(),
                    value: "v2".into(),
                },
                Tag {
                    key: "k3".into(),
                    value: String::new(),
                },
                Tag {
                    key: "k10".into(),
                    value: "v10".into(),
                },
            ],
            transitive_tag_keys: Some(vec![]),
            set_as_default: Some(true),
            ratio: Some(0.5),
            context: Some(BTreeMap::from([
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "2".to_string()),
            ])),
            outer: Some(Nested {
                inner: "i".into(),
                depth: Some(7),
            }),
            status: Some(StatusType::Inactive),
        };
        assert_eq!(input.ok(), Some(expected));
    }

    #[test]
    fn absent_members_are_none_or_default() {
        let input: Option<AssumeRole> = params("RoleArn=r&RoleSessionName=s").decode().ok();
        let input = input.map(|i| {
            (
                i.duration_seconds,
                i.policy_arns.len(),
                i.tags.len(),
                i.transitive_tag_keys,
                i.context,
                i.outer,
            )
        });
        assert_eq!(input, Some((None, 0, 0, None, None, None)));
    }

    #[test]
    fn missing_required_member_is_the_same_error_as_required() {
        let q = params("Action=AssumeRole&RoleSessionName=s");
        let today = q.required("RoleArn").err();
        let decoded = q.decode::<AssumeRole>().err();
        assert!(today.is_some());
        assert_eq!(decoded, today);
        assert_eq!(
            err(q.decode::<AssumeRole>()).1,
            "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null"
        );
    }

    #[test]
    fn missing_nested_member_names_aws_member_path() {
        let q = params("RoleArn=r&RoleSessionName=s&Tags.member.1.Key=a&Tags.member.2.Value=v");
        assert_eq!(
            err(q.decode::<AssumeRole>()),
            (
                "ValidationError".into(),
                "1 validation error detected: Value null at 'tags.2.member.key' failed to satisfy constraint: Member must not be null".into()
            )
        );
        let q = params("RoleArn=r&RoleSessionName=s&Outer.Depth=1");
        assert_eq!(
            err(q.decode::<AssumeRole>()).1,
            "1 validation error detected: Value null at 'outer.inner' failed to satisfy constraint: Member must not be null"
        );
        let q = params("RoleArn=r&RoleSessionName=s&Context.entry.1.key=a");
        assert_eq!(
            err(q.decode::<AssumeRole>()).1,
            "1 validation error detected: Value null at 'context.1.entry.value' failed to satisfy constraint: Member must not be null"
        );
    }

    #[test]
    fn bad_integer_is_the_same_error_as_int() {
        for v in ["abc", "", "1.5", "99999999999"] {
            let q = params(&format!("RoleArn=r&RoleSessionName=s&DurationSeconds={v}"));
            let today = q.int("DurationSeconds").err();
            let decoded = q.decode::<AssumeRole>().err();
            if v == "99999999999" {
                // Fits i64 (so `int` accepts it) but not the member's i32.
                assert_eq!(
                    decoded.and_then(|e| e.message).as_deref(),
                    Some(
                        "Value '99999999999' for parameter DurationSeconds is invalid. It should be an integer."
                    )
                );
            } else {
                assert!(today.is_some(), "{v}");
                assert_eq!(decoded, today, "{v}");
            }
        }
        let q = params("RoleArn=r&RoleSessionName=s&Outer.Inner=i&Outer.Depth=-1");
        assert_eq!(
            err(q.decode::<AssumeRole>()).1,
            "Value '-1' for parameter Outer.Depth is invalid. It should be an integer."
        );
    }

    #[test]
    fn bad_boolean_is_the_same_error_as_bool() {
        for v in ["yes", "True", "", "1"] {
            let q = params(&format!("RoleArn=r&RoleSessionName=s&SetAsDefault={v}"));
            let today = q.bool("SetAsDefault").err();
            assert!(today.is_some());
            assert_eq!(q.decode::<AssumeRole>().err(), today, "{v}");
        }
    }

    #[test]
    fn bad_number_and_enum_are_validation_errors() {
        let q = params("RoleArn=r&RoleSessionName=s&Ratio=NaN");
        assert_eq!(
            err(q.decode::<AssumeRole>()),
            (
                "ValidationError".into(),
                "Value 'NaN' for parameter Ratio is invalid. It should be a number.".into()
            )
        );
        let q = params("RoleArn=r&RoleSessionName=s&Status=Gone");
        assert_eq!(
            err(q.decode::<AssumeRole>()),
            (
                "ValidationError".into(),
                "1 validation error detected: Value 'Gone' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]".into()
            )
        );
    }

    #[test]
    fn huge_indices_are_ordered_without_allocating_by_value() {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct L {
            names: Vec<String>,
        }
        let q = params(
            "Names.member.4000000000=last&Names.member.1=first&Names.member.99999999999=ignored&Names.member.x=ignored&Names.member.20=mid",
        );
        let names = q.decode::<L>().map(|l| l.names).unwrap_or_default();
        assert_eq!(names, vec!["first", "mid", "last"]);
    }

    #[test]
    fn many_members_decode_in_one_pass() {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct L {
            names: Vec<String>,
        }
        let n = 50_000;
        let form: Vec<String> = (1..=n)
            .rev()
            .map(|i| format!("Names.member.{i}={i}"))
            .collect();
        let q = params(&form.join("&"));
        let started = std::time::Instant::now();
        let names = q.decode::<L>().map(|l| l.names).unwrap_or_default();
        assert_eq!(names.len(), n);
        assert_eq!(names.first().map(String::as_str), Some("1"));
        assert_eq!(names.last().map(|s| s.as_str()), Some("50000"));
        // Quadratic behaviour would take minutes here; linear takes milliseconds.
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn unit_and_empty_inputs_and_borrowed_strings() {
        #[derive(Deserialize, Debug)]
        struct Empty {}
        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(rename_all = "PascalCase")]
        struct Borrowed<'a> {
            user_name: &'a str,
        }
        let q = params("Action=GetCallerIdentity&Version=2011-06-15");
        assert!(q.decode::<()>().is_ok());
        assert!(q.decode::<Empty>().is_ok());
        let q = params("UserName=alice");
        assert_eq!(
            q.decode::<Borrowed>().ok(),
            Some(Borrowed { user_name: "alice" })
        );
    }

    #[test]
    fn aws_paths() {
        assert_eq!(super::aws_path("RoleArn"), "roleArn");
        assert_eq!(super::aws_path("Tags.member.1.Key"), "tags.1.member.key");
        assert_eq!(
            super::aws_path("PolicyInputList.member.12"),
            "policyInputList.12.member"
        );
        assert_eq!(super::aws_path("A.entry.3.value"), "a.3.entry.value");
    }

    proptest! {
        /// Lists decode exactly as `QueryParams::list` reads them, whatever the indices and
        /// their order on the wire.
        #[test]
        fn lists_agree_with_the_hand_written_helper(
            items in proptest::collection::btree_map(1u32..u32::MAX, "[a-z0-9 %&=+.]{0,8}", 0..40),
            reverse in any::<bool>(),
        ) {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct L { #[serde(default)] keys: Vec<String> }
            let mut form: Vec<(String, String)> = items
                .iter()
                .map(|(i, v)| (format!("Keys.member.{i}"), v.clone()))
                .collect();
            if reverse { form.reverse(); }
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish();
            let q = params(&body);
            let decoded = q.decode::<L>().map(|l| l.keys).unwrap_or_default();
            let today: Vec<String> = q.list("Keys").into_iter().map(str::to_string).collect();
            prop_assert_eq!(&decoded, &today);
            let expected: Vec<String> = items.into_values().collect();
            prop_assert_eq!(decoded, expected);
        }

        /// Lists of structures agree with `QueryParams::struct_list`.
        #[test]
        fn struct_lists_agree_with_the_hand_written_helper(
            items in proptest::collection::btree_map(1u32..1000, ("[a-z]{1,5}", "[a-z]{0,5}"), 0..20),
        ) {
            let mut form = Vec::new();
            for (i, (k, v)) in &items {
                form.push(format!("Tags.member.{i}.Value={v}"));
                form.push(format!("Tags.member.{i}.Key={k}"));
            }
            let q = params(&format!("RoleArn=r&RoleSessionName=s&{}", form.join("&")));
            let decoded: Vec<(String, String)> = q
                .decode::<AssumeRole>()
                .map(|i| i.tags.into_iter().map(|t| (t.key, t.value)).collect())
                .unwrap_or_default();
            let today: Vec<(String, String)> = q
                .struct_list("Tags")
                .iter()
                .map(|m| (m["Key"].to_string(), m["Value"].to_string()))
                .collect();
            prop_assert_eq!(&decoded, &today);
            prop_assert_eq!(decoded.len(), items.len());
        }

        /// Arbitrary parameter sets never panic; they decode or fail with a 400.
        #[test]
        fn arbitrary_parameters_never_panic(
            pairs in proptest::collection::vec(
                ("(RoleArn|RoleSessionName|Tags|Context|Outer|Status|Ratio)(\\.(member|entry|[0-9]{1,11}|Key|Value|key|value|Inner|Depth)){0,4}", "[a-zA-Z0-9.]{0,6}"),
                0..30,
            ),
        ) {
            let mut seen = std::collections::BTreeSet::new();
            let form: Vec<String> = pairs
                .into_iter()
                .filter(|(k, _)| seen.insert(k.clone()))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let q = params(&form.join("&"));
            if let Err(e) = q.decode::<AssumeRole>() {
                prop_assert_eq!(e.status, 400);
            }
        }
    }
}
