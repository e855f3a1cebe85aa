//! A serde `Serializer` producing the inner XML of an awsQuery `<{Action}Result>` element, so
//! that an operation's output is a plain `#[derive(Serialize)]` struct instead of
//! hand-written [`XmlWriter`](super::XmlWriter) calls. The output is byte for byte what
//! `XmlWriter` writes for the same data: no whitespace, no XML declaration, text escaped with
//! [`escape`].
//!
//! | Rust value                 | XML                                                          |
//! |----------------------------|--------------------------------------------------------------|
//! | struct member `F`          | `<F>…</F>`, in declaration order                             |
//! | `None`, `()`               | nothing: AWS omits absent members                            |
//! | `Vec<T>` member `F`        | `<F><member>…</member>…</F>`; empty: `<F></F>`               |
//! | map member `F`             | `<F><entry><key>…</key><value>…</value></entry>…</F>`        |
//! | `bool`                     | `true` / `false`                                             |
//! | integers, floats           | decimal text                                                 |
//! | `&[u8]` (`serialize_bytes`)| standard base64                                              |
//! | unit variant               | its (renamed) name as text                                   |
//! | newtype/struct variant `V` | `<F><V>…</V></F>` (a union)                                  |
//!
//! At the top level a map's keys are element names, so `#[serde(flatten)]` works there; in a
//! nested structure serde serializes a flattened struct as a map, which would come out as
//! `<entry>`s: do not flatten below the top. An omitted-when-empty list is
//! `#[serde(skip_serializing_if = "Vec::is_empty")]`, as `Tags` on IAM entities.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::ser::{self, Serialize};

use crate::escape::escape;

/// The inner XML of `<{Action}Result>`, or `None` when nothing is written (an output with no
/// members, or with every member absent).
pub(super) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Option<String>, Error> {
    let mut out = String::new();
    value.serialize(Top { out: &mut out })?;
    Ok(if out.is_empty() { None } else { Some(out) })
}

/// Output that cannot be XML (a top-level scalar, a tuple variant, a map key that is not
/// text). A bug in an output type, never the client's fault.
pub use crate::ser_error::OutputError as Error;

fn unsupported<T>(what: &str) -> Result<T, Error> {
    Err(Error(format!("{what} cannot be an awsQuery XML result")))
}

fn open(out: &mut String, tag: &str) {
    out.push('<');
    out.push_str(tag);
    out.push('>');
}

fn close(out: &mut String, tag: &str) {
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}

fn text_element(out: &mut String, tag: &str, text: &str) {
    open(out, tag);
    out.push_str(&escape(text));
    close(out, tag);
}

// ---------------------------------------------------------------------------------------
// The top level: the members of the Result element.

struct Top<'a> {
    out: &'a mut String,
}

macro_rules! top_scalars {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(
            fn $method(self, _v: $ty) -> Result<(), Error> {
                unsupported("a scalar")
            }
        )*
    };
}

impl<'a> ser::Serializer for Top<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ser::Impossible<(), Error>;
    type SerializeTuple = ser::Impossible<(), Error>;
    type SerializeTupleStruct = ser::Impossible<(), Error>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = TopMap<'a>;
    type SerializeStruct = Members<'a>;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    top_scalars! {
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_f32: f32, serialize_f64: f64, serialize_char: char,
        serialize_str: &str, serialize_bytes: &[u8],
    }

    fn serialize_none(self) -> Result<(), Error> {
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
    ) -> Result<(), Error> {
        unsupported("an enum")
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        unsupported("an enum")
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        unsupported("a list")
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        unsupported("a tuple")
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        unsupported("a tuple")
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        unsupported("an enum")
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Ok(TopMap {
            out: self.out,
            key: None,
        })
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Ok(Members {
            out: self.out,
            variant: None,
            wrapper: None,
        })
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        unsupported("an enum")
    }
}

/// A top-level map: each key names an element.
struct TopMap<'a> {
    out: &'a mut String,
    key: Option<String>,
}

impl ser::SerializeMap for TopMap<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key = Some(key.serialize(KeyName)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self.key.take().unwrap_or_default();
        value.serialize(Element {
            out: self.out,
            tag: &key,
        })
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

/// The members of a structure, optionally inside a wrapper element and, for a union
/// (struct variant), the variant's element; both are closed at `end`.
struct Members<'a> {
    out: &'a mut String,
    variant: Option<&'static str>,
    wrapper: Option<&'a str>,
}

impl ser::SerializeStruct for Members<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(Element {
            out: self.out,
            tag: key,
        })
    }

    fn end(self) -> Result<(), Error> {
        for tag in [self.variant, self.wrapper].into_iter().flatten() {
            close(self.out, tag);
        }
        Ok(())
    }
}

impl ser::SerializeStructVariant for Members<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }

    fn end(self) -> Result<(), Error> {
        ser::SerializeStruct::end(self)
    }
}

// ---------------------------------------------------------------------------------------
// One member: `<tag>…</tag>`, or nothing when absent.

struct Element<'a> {
    out: &'a mut String,
    tag: &'a str,
}

impl<'a> Element<'a> {
    fn text(self, text: &str) -> Result<(), Error> {
        text_element(self.out, self.tag, text);
        Ok(())
    }

    fn number(self, n: impl fmt::Display) -> Result<(), Error> {
        open(self.out, self.tag);
        self.out.push_str(&n.to_string());
        close(self.out, self.tag);
        Ok(())
    }

    fn float(self, f: f64) -> Result<(), Error> {
        if f.is_nan() {
            self.text("NaN")
        } else if f.is_infinite() {
            self.text(if f > 0.0 { "Infinity" } else { "-Infinity" })
        } else {
            self.number(f)
        }
    }

    fn list(self) -> List<'a> {
        open(self.out, self.tag);
        List {
            out: self.out,
            tag: self.tag,
        }
    }
}

macro_rules! element_numbers {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(
            fn $method(self, v: $ty) -> Result<(), Error> {
                self.number(v)
            }
        )*
    };
}

impl<'a> ser::Serializer for Element<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = List<'a>;
    type SerializeTuple = List<'a>;
    type SerializeTupleStruct = List<'a>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = Entries<'a>;
    type SerializeStruct = Members<'a>;
    type SerializeStructVariant = Members<'a>;

    element_numbers! {
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128,
    }

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.text(if v { "true" } else { "false" })
    }

    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.float(f64::from(v))
    }

    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.float(v)
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.text(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.text(v)
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        let encoded = zeroize::Zeroizing::new(STANDARD.encode(v));
        self.text(&encoded)
    }

    fn serialize_none(self) -> Result<(), Error> {
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.text(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        open(self.out, self.tag);
        value.serialize(Element {
            out: self.out,
            tag: variant,
        })?;
        close(self.out, self.tag);
        Ok(())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<List<'a>, Error> {
        Ok(self.list())
    }

    fn serialize_tuple(self, _len: usize) -> Result<List<'a>, Error> {
        Ok(self.list())
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<List<'a>, Error> {
        Ok(self.list())
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        unsupported("a tuple variant")
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Entries<'a>, Error> {
        open(self.out, self.tag);
        Ok(Entries {
            out: self.out,
            tag: self.tag,
        })
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Members<'a>, Error> {
        open(self.out, self.tag);
        Ok(Members {
            out: self.out,
            variant: None,
            wrapper: Some(self.tag),
        })
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Members<'a>, Error> {
        open(self.out, self.tag);
        open(self.out, variant);
        Ok(Members {
            out: self.out,
            variant: Some(variant),
            wrapper: Some(self.tag),
        })
    }
}

/// The `<member>` elements of a list, closed at `end`.
struct List<'a> {
    out: &'a mut String,
    tag: &'a str,
}

impl List<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(Element {
            out: self.out,
            tag: "member",
        })
    }

    fn finish(self) -> Result<(), Error> {
        close(self.out, self.tag);
        Ok(())
    }
}

impl ser::SerializeSeq for List<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTuple for List<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for List<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

/// `<entry><key>…</key><value>…</value></entry>` for each map entry, closed at `end`.
struct Entries<'a> {
    out: &'a mut String,
    tag: &'a str,
}

impl ser::SerializeMap for Entries<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        open(self.out, "entry");
        key.serialize(Element {
            out: self.out,
            tag: "key",
        })
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(Element {
            out: self.out,
            tag: "value",
        })?;
        close(self.out, "entry");
        Ok(())
    }

    fn end(self) -> Result<(), Error> {
        close(self.out, self.tag);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Top-level map keys must be text: they become element names.

struct KeyName;

macro_rules! key_not_text {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(
            fn $method(self, _v: $ty) -> Result<String, Error> {
                unsupported("a map key that is not text")
            }
        )*
    };
}

impl ser::Serializer for KeyName {
    type Ok = String;
    type Error = Error;
    type SerializeSeq = ser::Impossible<String, Error>;
    type SerializeTuple = ser::Impossible<String, Error>;
    type SerializeTupleStruct = ser::Impossible<String, Error>;
    type SerializeTupleVariant = ser::Impossible<String, Error>;
    type SerializeMap = ser::Impossible<String, Error>;
    type SerializeStruct = ser::Impossible<String, Error>;
    type SerializeStructVariant = ser::Impossible<String, Error>;

    key_not_text! {
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_f32: f32, serialize_f64: f64, serialize_char: char,
        serialize_bytes: &[u8],
    }

    fn serialize_str(self, v: &str) -> Result<String, Error> {
        Ok(v.to_string())
    }

    fn serialize_none(self) -> Result<String, Error> {
        unsupported("a map key that is not text")
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<String, Error> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<String, Error> {
        unsupported("a map key that is not text")
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<String, Error> {
        unsupported("a map key that is not text")
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<String, Error> {
        Ok(variant.to_string())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<String, Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<String, Error> {
        unsupported("a map key that is not text")
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        unsupported("a map key that is not text")
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        unsupported("a map key that is not text")
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        unsupported("a map key that is not text")
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        unsupported("a map key that is not text")
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        unsupported("a map key that is not text")
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        unsupported("a map key that is not text")
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        unsupported("a map key that is not text")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::Serialize;
    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::super::{XmlWriter, encode};
    use crate::timefmt::iso8601;

    const CREATED: OffsetDateTime = datetime!(2026-01-02 03:04:05.678 UTC);

    #[derive(Serialize, Clone)]
    #[serde(rename_all = "PascalCase")]
    struct Tag {
        key: String,
        value: String,
    }

    #[derive(Serialize, Clone)]
    #[serde(rename_all = "PascalCase")]
    struct PermissionsBoundary {
        permissions_boundary_type: &'static str,
        permissions_boundary_arn: String,
    }

    #[derive(Serialize, Clone)]
    #[serde(rename_all = "PascalCase")]
    struct User {
        path: String,
        user_name: String,
        user_id: String,
        arn: String,
        #[serde(with = "crate::xml::iso8601")]
        create_date: OffsetDateTime,
        permissions_boundary: Option<PermissionsBoundary>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tags: Vec<Tag>,
    }

    fn user(tags: Vec<Tag>, boundary: Option<&str>) -> User {
        User {
            path: "/a&b/".into(),
            user_name: "alice".into(),
            user_id: "AIDAEXAMPLE".into(),
            arn: "arn:aws:iam::123456789012:user/a&b/alice".into(),
            create_date: CREATED,
            permissions_boundary: boundary.map(|b| PermissionsBoundary {
                permissions_boundary_type: "PermissionsBoundaryPolicy",
                permissions_boundary_arn: b.into(),
            }),
            tags,
        }
    }

    /// What `write_user(.., full = true)` writes today (entity head, boundary, tags).
    fn written_user(w: &mut XmlWriter, u: &User, tag: &str) {
        w.open(tag)
            .elem("Path", &u.path)
            .elem("UserName", &u.user_name)
            .elem("UserId", &u.user_id)
            .elem("Arn", &u.arn)
            .elem("CreateDate", &iso8601(u.create_date));
        if let Some(b) = &u.permissions_boundary {
            w.open("PermissionsBoundary")
                .elem("PermissionsBoundaryType", "PermissionsBoundaryPolicy")
                .elem("PermissionsBoundaryArn", &b.permissions_boundary_arn)
                .close("PermissionsBoundary");
        }
        if !u.tags.is_empty() {
            w.open("Tags");
            for t in &u.tags {
                w.open("member")
                    .elem("Key", &t.key)
                    .elem("Value", &t.value)
                    .close("member");
            }
            w.close("Tags");
        }
        w.close(tag);
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct GetUserResult {
        user: User,
    }

    #[test]
    fn entity_with_boundary_and_tags_matches_the_writer() {
        for (tags, boundary) in [
            (vec![], None),
            (
                vec![
                    Tag {
                        key: "k<".into(),
                        value: "v'\"".into(),
                    },
                    Tag {
                        key: "k2".into(),
                        value: String::new(),
                    },
                ],
                Some("arn:aws:iam::123456789012:policy/b"),
            ),
        ] {
            let u = user(tags, boundary);
            let mut w = XmlWriter::new();
            written_user(&mut w, &u, "User");
            let out = encode(&GetUserResult { user: u }).ok().flatten();
            assert_eq!(out, Some(w.finish()));
        }
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct ListUsersResult {
        users: Vec<User>,
        is_truncated: bool,
        marker: Option<String>,
    }

    #[test]
    fn listing_with_truncation_and_marker_matches_the_writer() {
        for (users, marker) in [
            (vec![], None),
            (
                vec![user(vec![], None), user(vec![], Some("b"))],
                Some("bWFya2Vy"),
            ),
        ] {
            let mut w = XmlWriter::new();
            w.open("Users");
            for u in &users {
                written_user(&mut w, u, "member");
            }
            w.close("Users");
            w.elem(
                "IsTruncated",
                if marker.is_some() { "true" } else { "false" },
            );
            w.opt("Marker", marker);
            let out = encode(&ListUsersResult {
                users,
                is_truncated: marker.is_some(),
                marker: marker.map(str::to_string),
            });
            assert_eq!(out.ok().flatten(), Some(w.finish()));
        }
    }

    #[test]
    fn empty_list_is_an_empty_wrapper() {
        let out = encode(&ListUsersResult {
            users: vec![],
            is_truncated: false,
            marker: None,
        });
        assert_eq!(
            out.ok().flatten().as_deref(),
            Some("<Users></Users><IsTruncated>false</IsTruncated>")
        );
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Credentials {
        access_key_id: String,
        secret_access_key: String,
        session_token: String,
        #[serde(with = "crate::xml::iso8601")]
        expiration: OffsetDateTime,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct AssumedRoleUser {
        assumed_role_id: String,
        arn: String,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct AssumeRoleResult {
        credentials: Credentials,
        assumed_role_user: AssumedRoleUser,
        packed_policy_size: Option<usize>,
        source_identity: Option<String>,
    }

    #[test]
    fn sts_credentials_match_the_writer() {
        for (packed, source) in [(None, None), (Some(42usize), Some("me"))] {
            let out = encode(&AssumeRoleResult {
                credentials: Credentials {
                    access_key_id: "ASIAEXAMPLE".into(),
                    secret_access_key: "s/+=".into(),
                    session_token: "t+/=".into(),
                    expiration: CREATED,
                },
                assumed_role_user: AssumedRoleUser {
                    assumed_role_id: "AROA:s".into(),
                    arn: "arn:aws:sts::123456789012:assumed-role/r/s".into(),
                },
                packed_policy_size: packed,
                source_identity: source.map(str::to_string),
            });
            let mut w = XmlWriter::new();
            w.open("Credentials")
                .elem("AccessKeyId", "ASIAEXAMPLE")
                .elem("SecretAccessKey", "s/+=")
                .elem("SessionToken", "t+/=")
                .elem("Expiration", &iso8601(CREATED))
                .close("Credentials");
            w.open("AssumedRoleUser")
                .elem("AssumedRoleId", "AROA:s")
                .elem("Arn", "arn:aws:sts::123456789012:assumed-role/r/s")
                .close("AssumedRoleUser");
            if let Some(pp) = packed {
                w.elem("PackedPolicySize", &pp.to_string());
            }
            w.opt("SourceIdentity", source);
            assert_eq!(out.ok().flatten(), Some(w.finish()));
        }
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Position {
        line: u32,
        column: u32,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Statement {
        source_policy_id: String,
        source_policy_type: Kind,
        start_position: Option<Position>,
        end_position: Option<Position>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        User,
        #[allow(dead_code)]
        Group,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct BoundaryDetail {
        allowed_by_permissions_boundary: bool,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct EvaluationResult {
        eval_action_name: String,
        matched_statements: Vec<Statement>,
        missing_context_values: Vec<String>,
        permissions_boundary_decision_detail: Option<BoundaryDetail>,
        eval_decision_details: Option<BTreeMap<String, String>>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct SimulateResult {
        evaluation_results: Vec<EvaluationResult>,
        is_truncated: bool,
    }

    #[test]
    fn simulation_shapes_match_the_writer() {
        let out = encode(&SimulateResult {
            evaluation_results: vec![EvaluationResult {
                eval_action_name: "s3:GetObject".into(),
                matched_statements: vec![Statement {
                    source_policy_id: "p".into(),
                    source_policy_type: Kind::User,
                    start_position: Some(Position { line: 1, column: 2 }),
                    end_position: Some(Position {
                        line: 3,
                        column: 40,
                    }),
                }],
                missing_context_values: vec!["aws:username".into(), "s3:prefix".into()],
                permissions_boundary_decision_detail: Some(BoundaryDetail {
                    allowed_by_permissions_boundary: false,
                }),
                eval_decision_details: Some(BTreeMap::new()),
            }],
            is_truncated: false,
        });
        let mut w = XmlWriter::new();
        w.open("EvaluationResults").open("member");
        w.elem("EvalActionName", "s3:GetObject");
        w.open("MatchedStatements").open("member");
        w.elem("SourcePolicyId", "p")
            .elem("SourcePolicyType", "user");
        for (tag, (line, column)) in [("StartPosition", (1, 2)), ("EndPosition", (3, 40))] {
            w.open(tag)
                .elem("Line", &line.to_string())
                .elem("Column", &column.to_string())
                .close(tag);
        }
        w.close("member").close("MatchedStatements");
        w.open("MissingContextValues")
            .elem("member", "aws:username")
            .elem("member", "s3:prefix")
            .close("MissingContextValues");
        w.open("PermissionsBoundaryDecisionDetail")
            .elem("AllowedByPermissionsBoundary", "false")
            .close("PermissionsBoundaryDecisionDetail");
        w.open("EvalDecisionDetails").close("EvalDecisionDetails");
        w.close("member").close("EvaluationResults");
        w.elem("IsTruncated", "false");
        assert_eq!(out.ok().flatten(), Some(w.finish()));
    }

    #[test]
    fn maps_bytes_numbers_and_unions() {
        #[derive(Serialize)]
        enum Choice {
            Text(String),
            Pair { a: i8 },
        }
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Out {
            attributes: BTreeMap<String, u64>,
            #[serde(with = "crate::blob")]
            blob: Vec<u8>,
            ratio: f64,
            big: i128,
            first: Choice,
            second: Choice,
            unit: (),
        }
        let out = encode(&Out {
            attributes: BTreeMap::from([("Users".to_string(), 3), ("a&b".to_string(), 0)]),
            blob: vec![0xfb, 0xff],
            ratio: 0.25,
            big: -7,
            first: Choice::Text("x".into()),
            second: Choice::Pair { a: 1 },
            unit: (),
        });
        assert_eq!(
            out.ok().flatten().as_deref(),
            Some(
                "<Attributes><entry><key>Users</key><value>3</value></entry>\
                 <entry><key>a&amp;b</key><value>0</value></entry></Attributes>\
                 <Blob>+/8=</Blob><Ratio>0.25</Ratio><Big>-7</Big>\
                 <First><Text>x</Text></First><Second><Pair><a>1</a></Pair></Second>"
            )
        );
    }

    #[test]
    fn outputs_without_members_have_no_result_element() {
        #[derive(Serialize)]
        struct Unit;
        #[derive(Serialize)]
        struct Empty {}
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct AllAbsent {
            marker: Option<String>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            tags: Vec<String>,
        }
        assert_eq!(encode(&()).ok(), Some(None));
        assert_eq!(encode(&Unit).ok(), Some(None));
        assert_eq!(encode(&Empty {}).ok(), Some(None));
        assert_eq!(
            encode(&AllAbsent {
                marker: None,
                tags: vec![]
            })
            .ok(),
            Some(None)
        );
        assert_eq!(encode(&None::<AllAbsent>).ok(), Some(None));
    }

    #[test]
    fn top_level_maps_name_elements_so_flatten_works_there() {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Head {
            account: String,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Out {
            user_id: String,
            #[serde(flatten)]
            head: Head,
        }
        let out = encode(&Out {
            user_id: "u".into(),
            head: Head {
                account: "1".into(),
            },
        });
        assert_eq!(
            out.ok().flatten().as_deref(),
            Some("<UserId>u</UserId><Account>1</Account>")
        );
    }

    #[test]
    fn non_structures_at_the_top_are_internal_errors() {
        let e = encode(&"text")
            .err()
            .map(|e| (e.code.to_string(), e.status));
        assert_eq!(e, Some(("InternalFailure".to_string(), 500)));
        assert!(encode(&vec![1, 2]).is_err());
    }

    proptest! {
        #[test]
        fn any_text_encodes_as_the_writer_escapes_it(
            user_id in "\\PC{0,12}",
            account in proptest::option::of("[<>&'\"a-z0-9]{0,12}"),
            keys in proptest::collection::vec("\\PC{0,6}", 0..5),
        ) {
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Out {
                user_id: String,
                account: Option<String>,
                keys: Vec<String>,
            }
            let mut w = XmlWriter::new();
            w.elem("UserId", &user_id).opt("Account", account.as_deref());
            w.open("Keys");
            for k in &keys {
                w.elem("member", k);
            }
            w.close("Keys");
            let out = encode(&Out { user_id, account, keys });
            prop_assert_eq!(out.ok().flatten(), Some(w.finish()));
        }
    }
}
