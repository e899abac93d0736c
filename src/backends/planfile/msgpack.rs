//! cty's msgpack encoding of a backend configuration, decoded to JSON values.

use serde_json::{Map, Number, Value};

use super::wire::Cursor;

/// A backend configuration nests two or three levels (`assume_role.tags`); deeper input is hostile,
/// and the decoder is recursive.
const MAX_DEPTH: usize = 32;

/// A decoded msgpack value, or a cty unknown value (a msgpack extension), which has no JSON form and
/// is left out of the maps and arrays that hold it.
#[derive(Debug, PartialEq)]
pub(super) enum Decoded {
    Value(Value),
    Unknown,
}

/// Decodes one msgpack value. Bytes after it are ignored, as cty's decoder ignores them.
pub(super) fn decode_msgpack(bytes: &[u8]) -> Result<Decoded, String> {
    decode_value(&mut Cursor::new(bytes), 0)
}

fn decode_value(input: &mut Cursor<'_>, depth: usize) -> Result<Decoded, String> {
    let marker = input.byte()?;
    let value = match marker {
        0x00..=0x7f => Value::from(marker),
        0x80..=0x8f => return decode_map(input, u64::from(marker & 0x0f), depth),
        0x90..=0x9f => return decode_array(input, u64::from(marker & 0x0f), depth),
        0xa0..=0xbf => decode_str(input, u64::from(marker & 0x1f))?,
        0xc0 => Value::Null,
        0xc2 => Value::Bool(false),
        0xc3 => Value::Bool(true),
        // bin: Go's msgpack decodes it into a string too.
        0xc4 | 0xd9 => {
            let len = input.byte()?;
            decode_str(input, u64::from(len))?
        }
        0xc5 | 0xda => {
            let len = u16::from_be_bytes(input.array()?);
            decode_str(input, u64::from(len))?
        }
        0xc6 | 0xdb => {
            let len = u32::from_be_bytes(input.array()?);
            decode_str(input, u64::from(len))?
        }
        // ext 8/16/32: length, type, data. cty writes unknown values as extensions.
        0xc7 => {
            let len = input.byte()?;
            return skip_ext(input, u64::from(len));
        }
        0xc8 => {
            let len = u16::from_be_bytes(input.array()?);
            return skip_ext(input, u64::from(len));
        }
        0xc9 => {
            let len = u32::from_be_bytes(input.array()?);
            return skip_ext(input, u64::from(len));
        }
        0xca => float(f64::from(f32::from_be_bytes(input.array()?))),
        0xcb => float(f64::from_be_bytes(input.array()?)),
        0xcc => Value::from(input.byte()?),
        0xcd => Value::from(u16::from_be_bytes(input.array()?)),
        0xce => Value::from(u32::from_be_bytes(input.array()?)),
        0xcf => Value::from(u64::from_be_bytes(input.array()?)),
        0xd0 => Value::from(i8::from_be_bytes(input.array()?)),
        0xd1 => Value::from(i16::from_be_bytes(input.array()?)),
        0xd2 => Value::from(i32::from_be_bytes(input.array()?)),
        0xd3 => Value::from(i64::from_be_bytes(input.array()?)),
        // fixext 1/2/4/8/16.
        0xd4 => return skip_ext(input, 1),
        0xd5 => return skip_ext(input, 2),
        0xd6 => return skip_ext(input, 4),
        0xd7 => return skip_ext(input, 8),
        0xd8 => return skip_ext(input, 16),
        0xdc => {
            let len = u16::from_be_bytes(input.array()?);
            return decode_array(input, u64::from(len), depth);
        }
        0xdd => {
            let len = u32::from_be_bytes(input.array()?);
            return decode_array(input, u64::from(len), depth);
        }
        0xde => {
            let len = u16::from_be_bytes(input.array()?);
            return decode_map(input, u64::from(len), depth);
        }
        0xdf => {
            let len = u32::from_be_bytes(input.array()?);
            return decode_map(input, u64::from(len), depth);
        }
        0xe0..=0xff => Value::from(marker as i8),
        // 0xc1 is reserved and never valid.
        0xc1 => return Err("a msgpack value has an invalid type marker".into()),
    };
    Ok(Decoded::Value(value))
}

/// JSON has no NaN or infinities; cty has neither in a known number either.
fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn decode_str(input: &mut Cursor<'_>, len: u64) -> Result<Value, String> {
    let bytes = input.take(len)?;
    let s = std::str::from_utf8(bytes).map_err(|_| "a msgpack string is not UTF-8")?;
    Ok(Value::String(s.to_owned()))
}

fn skip_ext(input: &mut Cursor<'_>, len: u64) -> Result<Decoded, String> {
    input.byte()?; // the extension type
    input.take(len)?;
    Ok(Decoded::Unknown)
}

/// Each element takes at least one byte, so a count beyond the remaining bytes is rejected before
/// anything is allocated for it.
fn check_count(input: &Cursor<'_>, count: u64, per_element: u64) -> Result<usize, String> {
    count
        .checked_mul(per_element)
        .filter(|&n| n <= input.remaining() as u64)
        .and_then(|_| usize::try_from(count).ok())
        .ok_or_else(|| "a msgpack collection is longer than the data".to_owned())
}

fn decode_array(input: &mut Cursor<'_>, count: u64, depth: usize) -> Result<Decoded, String> {
    let depth = deeper(depth)?;
    let count = check_count(input, count, 1)?;
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        if let Decoded::Value(v) = decode_value(input, depth)? {
            items.push(v);
        }
    }
    Ok(Decoded::Value(Value::Array(items)))
}

fn decode_map(input: &mut Cursor<'_>, count: u64, depth: usize) -> Result<Decoded, String> {
    let depth = deeper(depth)?;
    let count = check_count(input, count, 2)?;
    let mut map = Map::new();
    for _ in 0..count {
        // cty objects and maps have string keys only.
        let key = match decode_value(input, depth)? {
            Decoded::Value(Value::String(k)) => k,
            _ => return Err("a msgpack map has a key that is not a string".into()),
        };
        if let Decoded::Value(v) = decode_value(input, depth)? {
            map.insert(key, v);
        }
    }
    Ok(Decoded::Value(Value::Object(map)))
}

fn deeper(depth: usize) -> Result<usize, String> {
    if depth >= MAX_DEPTH {
        return Err(format!(
            "msgpack values nest deeper than {MAX_DEPTH} levels"
        ));
    }
    Ok(depth + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(bytes: &[u8]) -> Value {
        match decode_msgpack(bytes).expect("decodes") {
            Decoded::Value(v) => v,
            Decoded::Unknown => panic!("unknown"),
        }
    }

    #[test]
    fn msgpack_scalars() {
        assert_eq!(value(&[0x00]), json!(0));
        assert_eq!(value(&[0x7f]), json!(127));
        assert_eq!(value(&[0xff]), json!(-1));
        assert_eq!(value(&[0xe0]), json!(-32));
        assert_eq!(value(&[0xc0]), Value::Null);
        assert_eq!(value(&[0xc2]), json!(false));
        assert_eq!(value(&[0xc3]), json!(true));
        assert_eq!(value(&[0xcc, 0xff]), json!(255));
        assert_eq!(value(&[0xcd, 0x01, 0x00]), json!(256));
        assert_eq!(value(&[0xce, 0, 1, 0, 0]), json!(65536));
        assert_eq!(
            value(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            json!(u64::MAX)
        );
        assert_eq!(value(&[0xd0, 0x80]), json!(-128));
        assert_eq!(value(&[0xd1, 0xff, 0x00]), json!(-256));
        assert_eq!(value(&[0xd2, 0xff, 0xff, 0xff, 0xff]), json!(-1));
        assert_eq!(value(&[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]), json!(i64::MIN));
        assert_eq!(value(&[0xca, 0x3f, 0xc0, 0, 0]), json!(1.5));
        assert_eq!(
            value(&[0xcb, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18]),
            json!(std::f64::consts::PI)
        );
        // NaN has no JSON form.
        assert_eq!(value(&[0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0]), Value::Null);
        assert_eq!(value(b"\xa3abc"), json!("abc"));
        assert_eq!(value(b"\xa0"), json!(""));
        assert_eq!(value(b"\xd9\x03abc"), json!("abc"));
        assert_eq!(value(b"\xda\x00\x03abc"), json!("abc"));
        assert_eq!(value(b"\xdb\x00\x00\x00\x03abc"), json!("abc"));
        assert_eq!(value(b"\xc4\x02hi"), json!("hi"));
        assert_eq!(value(b"\xa2\xc3\xa9"), json!("é"));
        // Trailing bytes are ignored, as by cty.
        assert_eq!(value(b"\xc3\xc0"), json!(true));
    }

    #[test]
    fn msgpack_collections_and_unknowns() {
        assert_eq!(value(&[0x90]), json!([]));
        assert_eq!(value(&[0x80]), json!({}));
        assert_eq!(value(b"\x92\x01\xa1x"), json!([1, "x"]));
        assert_eq!(value(b"\xdc\x00\x02\x01\x02"), json!([1, 2]));
        assert_eq!(value(b"\xdd\x00\x00\x00\x01\xc0"), json!([null]));
        assert_eq!(value(b"\xde\x00\x01\xa1a\x01"), json!({"a": 1}));
        assert_eq!(value(b"\xdf\x00\x00\x00\x01\xa1a\x01"), json!({"a": 1}));
        assert_eq!(
            value(b"\x82\xa1a\x81\xa1b\x91\xc3\xa1c\xc0"),
            json!({"a": {"b": [true]}, "c": null})
        );
        // A duplicate key: the last one wins.
        assert_eq!(value(b"\x82\xa1a\x01\xa1a\x02"), json!({"a": 2}));
        // cty's unknown values: the plain one (fixext1 type 0) and a refined one (ext8 type 12), as
        // the fixture plan holds; they are left out of maps and arrays.
        assert_eq!(decode_msgpack(b"\xd4\x00\x00"), Ok(Decoded::Unknown));
        assert_eq!(
            value(b"\x83\xa1u\xd4\x00\x00\xa1r\xc7\x03\x0c\x81\x01\xc2\xa1k\xa1v"),
            json!({"k": "v"})
        );
        assert_eq!(value(b"\x93\x01\xd5\x00\x00\x00\x02"), json!([1, 2]));
        for ext in [
            &b"\xd6\x01\x00\x00\x00\x00"[..],
            b"\xd7\x01\x00\x00\x00\x00\x00\x00\x00\x00",
            b"\xd8\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            b"\xc8\x00\x01\x05\x00",
            b"\xc9\x00\x00\x00\x01\x05\x00",
        ] {
            assert_eq!(decode_msgpack(ext), Ok(Decoded::Unknown), "{ext:?}");
        }
    }

    #[test]
    fn msgpack_malformed() {
        let bad: &[&[u8]] = &[
            b"",
            b"\xc1",
            b"\xa3ab",                        // string shorter than its length
            b"\xdb\xff\xff\xff\xffab",        // absurd string length
            b"\xdd\xff\xff\xff\xff\x01",      // absurd array count
            b"\xdf\xff\xff\xff\xff\xa1a\x01", // absurd map count
            b"\x81\xa1a",                     // map without its value
            b"\x81\x01\x01",                  // non-string key
            b"\x81\xd4\x00\x00\x01",          // unknown key
            b"\xa2\xff\xfe",                  // not UTF-8
            b"\xcd\x01",                      // truncated uint16
            b"\xcb\x00\x00",                  // truncated float64
            b"\xc7\x05\x00\x00",              // truncated ext
            b"\xd8\x00",                      // truncated fixext
            b"\xd9",                          // str8 without length
        ];
        for b in bad {
            assert!(decode_msgpack(b).is_err(), "{b:?}");
        }
    }

    #[test]
    fn msgpack_depth_is_limited() {
        let nested = |n: usize| {
            let mut b = vec![0x91; n];
            b.push(0xc0);
            b
        };
        let mut want = Value::Null;
        for _ in 0..MAX_DEPTH {
            want = Value::Array(vec![want]);
        }
        assert_eq!(value(&nested(MAX_DEPTH)), want);
        assert!(decode_msgpack(&nested(MAX_DEPTH + 1)).is_err());
        // Far deeper input fails the same way, without exhausting the stack.
        assert!(decode_msgpack(&vec![0x81; 100_000]).is_err());
        assert!(decode_msgpack(&vec![0x91; 1_000_000]).is_err());
    }
}
