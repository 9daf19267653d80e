//! The trace hash's input: a history's typed fields as compact bytes, not JSON text.
//!
//! A serde serializer that writes each value as a one-byte type mark and its bytes (numbers
//! in little-endian, strings and names length-prefixed, sequences, maps and structs
//! bracketed), so two values that serialize differently feed the hash different bytes,
//! with no number or string formatting. The same trace gives the same bytes on every run
//! and machine; the form is internal (the `--trace` JSON lines are the contract).

use serde::ser::{self, Serialize};
use std::fmt;

/// Appends the digest form of `value` to `out`. Fails only for a type serde itself
/// refuses to describe (none in the history).
pub fn append<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
    value.serialize(&mut Feed { out })
}

/// A value serde could not describe.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

struct Feed<'a> {
    out: &'a mut Vec<u8>,
}

impl Feed<'_> {
    fn mark(&mut self, mark: u8) {
        self.out.push(mark);
    }

    fn u64(&mut self, mark: u8, v: u64) {
        self.out.push(mark);
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    fn bytes(&mut self, mark: u8, v: &[u8]) {
        self.u64(mark, v.len() as u64);
        self.out.extend_from_slice(v);
    }
}

type Done = Result<(), Error>;

impl ser::Serializer for &mut Feed<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Done {
        self.out.extend_from_slice(&[b'b', u8::from(v)]);
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Done {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Done {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Done {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Done {
        self.u64(b'i', v as u64);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Done {
        self.mark(b'I');
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Done {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Done {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Done {
        self.serialize_u64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Done {
        self.u64(b'u', v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Done {
        self.mark(b'U');
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Done {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Done {
        self.u64(b'f', v.to_bits());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Done {
        self.u64(b'c', v.into());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Done {
        self.bytes(b's', v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Done {
        self.bytes(b'y', v);
        Ok(())
    }
    fn serialize_none(self) -> Done {
        self.mark(b'n');
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Done {
        self.mark(b'S');
        value.serialize(self)
    }
    fn serialize_unit(self) -> Done {
        self.mark(b'0');
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Done {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Done {
        self.bytes(b'v', variant.as_bytes());
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Done {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Done {
        self.bytes(b'V', variant.as_bytes());
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Error> {
        self.mark(b'[');
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, Error> {
        self.mark(b'(');
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Error> {
        self.mark(b'(');
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self, Error> {
        self.bytes(b'T', variant.as_bytes());
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, Error> {
        self.mark(b'{');
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Error> {
        self.mark(b'{');
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self, Error> {
        self.bytes(b'W', variant.as_bytes());
        Ok(self)
    }
}

/// The compound parts: each element or field in turn, then the closing mark.
macro_rules! compound {
    ($($part:ident :: $element:ident closes $close:literal;)*) => {$(
        impl ser::$part for &mut Feed<'_> {
            type Ok = ();
            type Error = Error;
            fn $element<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
                value.serialize(&mut **self)
            }
            fn end(self) -> Done {
                self.mark($close);
                Ok(())
            }
        }
    )*};
}

compound! {
    SerializeSeq::serialize_element closes b']';
    SerializeTuple::serialize_element closes b')';
    SerializeTupleStruct::serialize_field closes b')';
    SerializeTupleVariant::serialize_field closes b')';
}

/// Named fields: each name, then its value.
macro_rules! fields {
    ($($part:ident;)*) => {$(
        impl ser::$part for &mut Feed<'_> {
            type Ok = ();
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Done {
                self.bytes(b'k', key.as_bytes());
                value.serialize(&mut **self)
            }
            fn end(self) -> Done {
                self.mark(b'}');
                Ok(())
            }
        }
    )*};
}

fields! {
    SerializeStruct;
    SerializeStructVariant;
}

impl ser::SerializeMap for &mut Feed<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Done {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        value.serialize(&mut **self)
    }
    fn end(self) -> Done {
        self.mark(b'}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn form<T: Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        append(value, &mut out).expect("describable");
        out
    }

    #[derive(serde::Serialize)]
    struct Op {
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<String>,
    }

    #[test]
    fn values_that_serialize_differently_have_different_forms() {
        // A skipped field is told apart by the names of the ones present.
        let key = Op {
            key: Some("a".into()),
            value: None,
        };
        let value = Op {
            key: None,
            value: Some("a".into()),
        };
        assert_ne!(form(&key), form(&value));
        // Boundaries between strings are kept ("ab","c" is not "a","bc").
        assert_ne!(form(&("ab", "c")), form(&("a", "bc")));
        assert_ne!(form(&vec![1u64, 2]), form(&vec![12u64]));
        assert_ne!(form(&Some(0u64)), form(&0u64));
        assert_ne!(form(&1u64), form(&1i64));
        assert_ne!(form(&0.1f64), form(&0.2f64));
        let map = BTreeMap::from([("x", 1u64)]);
        assert_eq!(form(&map), form(&BTreeMap::from([("x", 1u64)])));
        assert_ne!(form(&map), form(&BTreeMap::from([("x", 2u64)])));
    }
}
