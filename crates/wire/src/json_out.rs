//! The JSON writer behind [`crate::json::encode`]: a `serde::Serializer` that writes exactly
//! the bytes `serde_json::to_vec` writes (compact form, the same escapes, `itoa` integers and
//! `zmij` floats, non-finite floats as `null`), with a string escaper that checks eight bytes
//! at a time.
//!
//! Why not `serde_json::to_vec`: serde_json looks up every byte of a string in its escape
//! table one at a time. A response's largest members are values — a `SecretString`, a
//! base64 `Plaintext` or `SecretBinary` of kilobytes — that almost never need an escape, and
//! per byte that lookup cost more instructions (callgrind) than the rest of encoding the
//! response. Here a run of eight bytes without `"`, `\` or a control character is accepted
//! with a few word operations and copied in one piece.
//!
//! The property test in this module holds the writer to serde_json's output byte for byte.
//! serde_json's `arbitrary_precision` and `raw_value` features (off here) serialize numbers
//! and raw values as structs with private names, which this writer does not know; were either
//! switched on by a dependency, the property test's numbers would differ and it would fail.

use serde::ser::{self, Serialize};

/// Why an output could not be written: a `Serialize` impl reported an error, or a map key
/// was not a string, a character, a number or a bool.
pub use crate::ser_error::OutputError as WriteError;

/// Serializes `value` as compact JSON.
pub fn to_vec<T: ?Sized + Serialize>(value: &T) -> Result<Vec<u8>, WriteError> {
    let mut out = Vec::with_capacity(256);
    write_into(&mut out, value)?;
    Ok(out)
}

/// Appends the compact JSON of `value` to `out`. The buffer itself is written to, not a copy
/// (a caller that sized a zeroizing buffer for a secret keeps its only copy there); after an
/// error it holds what was written so far.
pub fn write_into<T: ?Sized + Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), WriteError> {
    value.serialize(&mut Writer { out })
}

struct Writer<'v> {
    out: &'v mut Vec<u8>,
}

const HEX: &[u8; 16] = b"0123456789abcdef";
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each of the eight bytes of `word` that is below 0x20, `"` or `\\`, and
/// possibly of bytes above such a byte. Each test is the classic "has a byte less than n"
/// bit trick: a borrow can only start at a byte that satisfies it, so whether the result is
/// zero is exact (the position of its lowest bit too), the other bits are not.
fn escape_bits(word: u64) -> u64 {
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (control | quote | backslash) & HIGHS
}

fn word_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(chunk) = bytes.get(at..at + 8) {
        word.copy_from_slice(chunk);
    }
    u64::from_le_bytes(word)
}

#[cfg(test)]
fn needs_escape(word: u64) -> bool {
    escape_bits(word) != 0
}

/// How many bytes from the start of `bytes` need no escape: 32 bytes per step while there
/// are that many, then 8, then one at a time.
fn clean_prefix(bytes: &[u8]) -> usize {
    let mut i = 0;
    while i + 32 <= bytes.len() {
        let found = escape_bits(word_at(bytes, i))
            | escape_bits(word_at(bytes, i + 8))
            | escape_bits(word_at(bytes, i + 16))
            | escape_bits(word_at(bytes, i + 24));
        if found != 0 {
            break;
        }
        i += 32;
    }
    while i + 8 <= bytes.len() {
        let found = escape_bits(word_at(bytes, i));
        if found != 0 {
            // The lowest flagged byte is exact (little-endian: the first in the string).
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < bytes.len() && escape_of(bytes[i]).is_none() {
        i += 1;
    }
    i
}

/// The escape serde_json writes for `byte`, if it needs one.
fn escape_of(byte: u8) -> Option<&'static [u8]> {
    Some(match byte {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        0x08 => b"\\b",
        0x0c => b"\\f",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        0x00..=0x1f => b"\\u00",
        _ => return None,
    })
}

fn write_str(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut at = 0;
    loop {
        let run = clean_prefix(&bytes[at..]);
        out.extend_from_slice(&bytes[at..at + run]);
        at += run;
        let Some(&byte) = bytes.get(at) else { break };
        if let Some(escape) = escape_of(byte) {
            out.extend_from_slice(escape);
            if escape == b"\\u00" {
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
            }
        } else {
            // Not reached: `clean_prefix` stops only at a byte that needs an escape.
            out.push(byte);
        }
        at += 1;
    }
    out.push(b'"');
}

/// The length of `value` written as a JSON string, quotes included: what [`write_str`]
/// appends. A caller that must size a buffer exactly (a zeroizing buffer for a secret, which
/// must never reallocate) counts with this rather than assuming the worst case of six bytes
/// per byte.
pub fn escaped_len(value: &str) -> usize {
    let bytes = value.as_bytes();
    let mut len = bytes.len() + 2;
    let mut at = 0;
    loop {
        at += clean_prefix(&bytes[at..]);
        let Some(&byte) = bytes.get(at) else { break };
        len += match escape_of(byte) {
            Some(b"\\u00") => 5,
            Some(escape) => escape.len() - 1,
            None => 0,
        };
        at += 1;
    }
    len
}

fn write_f64(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(value).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

fn write_f32(out: &mut Vec<u8>, value: f32) {
    if value.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(value).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

fn write_int<I: itoa::Integer>(out: &mut Vec<u8>, value: I) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// An array or object being written: whether the next element is the first.
pub struct Compound<'a, 'v> {
    writer: &'a mut Writer<'v>,
    first: bool,
    /// For a `{"Variant": …}` wrapper: the closing brace after the inner array or object.
    variant: bool,
}

impl Compound<'_, '_> {
    fn comma(&mut self) {
        if self.first {
            self.first = false;
        } else {
            self.writer.out.push(b',');
        }
    }

    fn close(self, bracket: u8) {
        self.writer.out.push(bracket);
        if self.variant {
            self.writer.out.push(b'}');
        }
    }
}

impl<'v> Writer<'v> {
    fn open<'a>(&'a mut self, bracket: u8, variant: Option<&str>) -> Compound<'a, 'v> {
        if let Some(name) = variant {
            self.out.push(b'{');
            write_str(self.out, name);
            self.out.push(b':');
        }
        self.out.push(bracket);
        Compound {
            writer: self,
            first: true,
            variant: variant.is_some(),
        }
    }
}

impl<'a, 'v> ser::Serializer for &'a mut Writer<'v> {
    type Ok = ();
    type Error = WriteError;
    type SerializeSeq = Compound<'a, 'v>;
    type SerializeTuple = Compound<'a, 'v>;
    type SerializeTupleStruct = Compound<'a, 'v>;
    type SerializeTupleVariant = Compound<'a, 'v>;
    type SerializeMap = Compound<'a, 'v>;
    type SerializeStruct = Compound<'a, 'v>;
    type SerializeStructVariant = Compound<'a, 'v>;

    fn serialize_bool(self, v: bool) -> Result<(), WriteError> {
        self.out
            .extend_from_slice(if v { b"true".as_slice() } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), WriteError> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result<(), WriteError> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Result<(), WriteError> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result<(), WriteError> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), WriteError> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), WriteError> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<(), WriteError> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result<(), WriteError> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<(), WriteError> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), WriteError> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), WriteError> {
        write_f32(self.out, v);
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), WriteError> {
        write_f64(self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), WriteError> {
        write_str(self.out, v.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), WriteError> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), WriteError> {
        // serde_json writes bytes as an array of numbers.
        let mut seq = self.open(b'[', None);
        for byte in v {
            seq.comma();
            write_int(seq.writer.out, *byte);
        }
        seq.close(b']');
        Ok(())
    }
    fn serialize_none(self) -> Result<(), WriteError> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), WriteError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), WriteError> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), WriteError> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), WriteError> {
        write_str(self.out, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), WriteError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), WriteError> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.push(b':');
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a, 'v>, WriteError> {
        Ok(self.open(b'[', None))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Compound<'a, 'v>, WriteError> {
        Ok(self.open(b'[', None))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'v>, WriteError> {
        Ok(self.open(b'[', None))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'v>, WriteError> {
        Ok(self.open(b'[', Some(variant)))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a, 'v>, WriteError> {
        Ok(self.open(b'{', None))
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'v>, WriteError> {
        Ok(self.open(b'{', None))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'v>, WriteError> {
        Ok(self.open(b'{', Some(variant)))
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = WriteError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), WriteError> {
        self.comma();
        value.serialize(&mut *self.writer)
    }
    fn end(self) -> Result<(), WriteError> {
        self.close(b']');
        Ok(())
    }
}

/// Tuples, tuple structs and tuple variants are arrays: their elements are a sequence's.
macro_rules! as_sequence {
    ($($trait:ident::$method:ident),*) => {
        $(impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = WriteError;
            fn $method<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), WriteError> {
                ser::SerializeSeq::serialize_element(self, value)
            }
            fn end(self) -> Result<(), WriteError> {
                ser::SerializeSeq::end(self)
            }
        })*
    };
}

as_sequence!(
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = WriteError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), WriteError> {
        self.comma();
        key.serialize(MapKey(&mut *self.writer))?;
        self.writer.out.push(b':');
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), WriteError> {
        value.serialize(&mut *self.writer)
    }
    fn end(self) -> Result<(), WriteError> {
        self.close(b'}');
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = WriteError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), WriteError> {
        self.comma();
        write_str(self.writer.out, key);
        self.writer.out.push(b':');
        value.serialize(&mut *self.writer)
    }
    fn end(self) -> Result<(), WriteError> {
        self.close(b'}');
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = WriteError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), WriteError> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<(), WriteError> {
        self.close(b'}');
        Ok(())
    }
}

/// A map key: JSON object keys are strings, so (as serde_json does) strings and characters
/// are written as they are, integers, bools and finite floats quoted, and anything else is
/// an error.
struct MapKey<'a, 'v>(&'a mut Writer<'v>);

fn key_must_be_a_string() -> WriteError {
    WriteError("key must be a string".to_owned())
}

fn float_key_must_be_finite() -> WriteError {
    WriteError("float key must be finite (got NaN or +/-inf)".to_owned())
}

macro_rules! quoted_key {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method(self, v: $ty) -> Result<(), WriteError> {
            self.0.out.push(b'"');
            write_int(self.0.out, v);
            self.0.out.push(b'"');
            Ok(())
        })*
    };
}

impl ser::Serializer for MapKey<'_, '_> {
    type Ok = ();
    type Error = WriteError;
    type SerializeSeq = ser::Impossible<(), WriteError>;
    type SerializeTuple = ser::Impossible<(), WriteError>;
    type SerializeTupleStruct = ser::Impossible<(), WriteError>;
    type SerializeTupleVariant = ser::Impossible<(), WriteError>;
    type SerializeMap = ser::Impossible<(), WriteError>;
    type SerializeStruct = ser::Impossible<(), WriteError>;
    type SerializeStructVariant = ser::Impossible<(), WriteError>;

    fn serialize_str(self, v: &str) -> Result<(), WriteError> {
        write_str(self.0.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), WriteError> {
        write_str(self.0.out, v.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }
    fn serialize_bool(self, v: bool) -> Result<(), WriteError> {
        self.0.out.extend_from_slice(if v {
            b"\"true\"".as_slice()
        } else {
            b"\"false\""
        });
        Ok(())
    }
    quoted_key!(
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128
    );
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), WriteError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), WriteError> {
        value.serialize(self)
    }
    fn serialize_f32(self, v: f32) -> Result<(), WriteError> {
        if !v.is_finite() {
            return Err(float_key_must_be_finite());
        }
        self.0.out.push(b'"');
        write_f32(self.0.out, v);
        self.0.out.push(b'"');
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), WriteError> {
        if !v.is_finite() {
            return Err(float_key_must_be_finite());
        }
        self.0.out.push(b'"');
        write_f64(self.0.out, v);
        self.0.out.push(b'"');
        Ok(())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), WriteError> {
        Err(key_must_be_a_string())
    }
    fn serialize_none(self) -> Result<(), WriteError> {
        Err(key_must_be_a_string())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), WriteError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), WriteError> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), WriteError> {
        Err(key_must_be_a_string())
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), WriteError> {
        Err(key_must_be_a_string())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, WriteError> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, WriteError> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, WriteError> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, WriteError> {
        Err(key_must_be_a_string())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, WriteError> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, WriteError> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, WriteError> {
        Err(key_must_be_a_string())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    fn same_as_serde_json<T: Serialize>(value: &T) {
        let ours = to_vec(value).map_err(|e| e.to_string());
        let theirs = serde_json::to_vec(value).map_err(|e| e.to_string());
        match (ours, theirs) {
            (Ok(a), Ok(b)) => assert_eq!(
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b),
                "bytes differ from serde_json"
            ),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("one failed and the other did not: ours {a:?}, serde_json {b:?}"),
        }
    }

    #[test]
    fn every_byte_alone_and_in_every_position_of_a_word() {
        // Each of the 128 ASCII bytes (and multi-byte characters) at each offset 0..=40 of a
        // string of 'a's, so it lands in every lane of a word, in each word of a 32-byte step
        // and in the tail.
        let mut chars: Vec<char> = (0u8..128).map(char::from).collect();
        chars.extend(['é', '€', '😀', '\u{7f}', '\u{2028}']);
        for c in chars {
            for offset in 0..=40 {
                for len in [offset + 1, offset + 8, 70] {
                    let mut s = "a".repeat(offset);
                    s.push(c);
                    while s.chars().count() < len {
                        s.push('b');
                    }
                    same_as_serde_json(&s);
                    assert_eq!(to_vec(&s).map(|v| v.len()).ok(), Some(escaped_len(&s)));
                }
            }
        }
    }

    #[test]
    fn write_into_appends_to_the_buffer_it_is_given() {
        let mut buf = Vec::with_capacity(1024);
        buf.extend_from_slice(b"x");
        let before = buf.as_ptr();
        assert!(write_into(&mut buf, &serde_json::json!({"a": "b\n", "n": [1, 2.5]})).is_ok());
        assert_eq!(buf, b"x{\"a\":\"b\\n\",\"n\":[1,2.5]}");
        // The allocation the caller sized (e.g. a zeroizing one) is the one written to.
        assert_eq!(buf.as_ptr(), before);
    }

    #[test]
    fn the_clean_prefix_ends_at_the_first_byte_that_needs_escaping() {
        for len in 0..80 {
            let clean: Vec<u8> = (0..len).map(|i| b"a\x7f\xc3\xa9!~ Z"[i % 8]).collect();
            assert_eq!(clean_prefix(&clean), len);
            for at in 0..len {
                for (bad, after) in [(b'"', b'\\'), (0x00, 0x1f), (b'\\', b'a'), (0x1f, 0x1f)] {
                    let mut bytes = clean.clone();
                    bytes[at] = bad;
                    if at + 1 < len {
                        bytes[at + 1] = after;
                    }
                    assert_eq!(clean_prefix(&bytes), at, "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn the_word_test_flags_exactly_the_bytes_that_need_escaping() {
        for byte in 0u8..=255 {
            for lane in 0..8 {
                let mut word = [b'x'; 8];
                word[lane] = byte;
                let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
                assert_eq!(
                    needs_escape(u64::from_le_bytes(word)),
                    expected,
                    "byte {byte:#04x} in lane {lane}"
                );
            }
        }
        // Two candidates side by side (a borrow from one lane into the next).
        assert!(needs_escape(u64::from_le_bytes(*b"\x00\x01xxxxxx")));
        assert!(!needs_escape(u64::from_le_bytes(
            *b"\x21\x5b\x5d\x7f\x80\xff !"
        )));
    }

    #[derive(serde::Serialize)]
    enum Shape {
        Unit,
        Newtype(u8),
        Tuple(i32, String),
        Struct { a: Option<u8>, b: f64 },
    }

    #[derive(serde::Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<String>,
        present: Option<String>,
        created: f64,
        count: u64,
        delta: i64,
        flag: bool,
        list: Vec<String>,
        map: BTreeMap<String, String>,
        int_keys: BTreeMap<i32, bool>,
        shapes: Vec<Shape>,
        unit: (),
        bytes: serde_bytes_like::Bytes,
        ch: char,
        small: f32,
    }

    mod serde_bytes_like {
        pub struct Bytes(pub Vec<u8>);
        impl serde::Serialize for Bytes {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
    }

    #[test]
    fn every_kind_of_member_an_output_has() {
        same_as_serde_json(&Output {
            name: "n\"a\\m\ne\u{1}".into(),
            skipped: None,
            present: None,
            created: 1_764_201_600.123,
            count: u64::MAX,
            delta: i64::MIN,
            flag: true,
            list: vec![String::new(), "x".into()],
            map: BTreeMap::from([("k\t".into(), "v".into()), ("a".into(), String::new())]),
            int_keys: BTreeMap::from([(-1, true), (7, false)]),
            shapes: vec![
                Shape::Unit,
                Shape::Newtype(3),
                Shape::Tuple(-4, "t".into()),
                Shape::Struct { a: None, b: 0.5 },
            ],
            unit: (),
            bytes: serde_bytes_like::Bytes(vec![0, 255, 16]),
            ch: '"',
            small: 0.1,
        });
        for f in [
            0.0,
            -0.0,
            1.0,
            1e21,
            1.5e-7,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
        ] {
            same_as_serde_json(&f);
            same_as_serde_json(&(f as f32));
        }
        same_as_serde_json(&Vec::<u8>::new());
        same_as_serde_json(&BTreeMap::<String, u8>::new());
        same_as_serde_json(&Some(Some(())));
        same_as_serde_json(&(1u128 << 100));
        same_as_serde_json(&-(1i128 << 100));
    }

    #[test]
    fn map_keys_as_serde_json_writes_or_refuses_them() {
        struct AsMap<K>(Vec<(K, u8)>);
        impl<K: Serialize> Serialize for AsMap<K> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
            }
        }
        same_as_serde_json(&AsMap(vec![(1.5f64, 1), (-0.0, 2)]));
        same_as_serde_json(&AsMap(vec![(0.25f32, 1)]));
        same_as_serde_json(&AsMap(vec![(Some("k"), 1)]));
        same_as_serde_json(&AsMap(vec![(true, 1), (false, 2)]));
        same_as_serde_json(&AsMap(vec![('c', 1)]));
        same_as_serde_json(&AsMap(vec![(u128::MAX, 1)]));
        for refused in [f64::NAN, f64::INFINITY] {
            assert!(to_vec(&AsMap(vec![(refused, 1)])).is_err());
            assert!(serde_json::to_vec(&AsMap(vec![(refused, 1)])).is_err());
        }
        assert!(to_vec(&AsMap(vec![(None::<&str>, 1)])).is_err());
        assert!(to_vec(&AsMap(vec![((), 1)])).is_err());
        let vec_keys = BTreeMap::from([(vec![1u8], 1u8)]);
        assert!(to_vec(&vec_keys).is_err());
        assert!(serde_json::to_vec(&vec_keys).is_err());
    }

    fn arbitrary_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[\\x00-\\x7f]{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn writes_the_bytes_serde_json_writes(value in arbitrary_value()) {
            let ours = to_vec(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let theirs = serde_json::to_vec(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn strings_of_any_characters(s in any::<String>(), ascii in "[\\x00-\\x7f]{0,64}") {
            for s in [&s, &ascii] {
                let ours = to_vec(s).ok();
                prop_assert_eq!(ours.as_ref().map(Vec::len), Some(escaped_len(s)));
                prop_assert_eq!(ours, serde_json::to_vec(s).ok());
            }
        }
    }
}
