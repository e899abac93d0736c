//! The backend copy inside a saved plan file (`terraform plan -out=PLAN`).
//!
//! `terraform apply PLAN` does not read the saved backend in `.terraform/terraform.tfstate`: it loads
//! the backend from the copy that `plan` embedded in the plan file, with that run's merged
//! configuration — static keys included, in plain text. A plan made before a key rotation therefore
//! fails to apply with the same STS 403 even after the working directory was healed, and tfshim must
//! look inside the plan to know which key it carries.
//!
//! A plan file is a zip archive whose `tfplan` entry is the protobuf `planproto.Plan` (Terraform 1.11,
//! `internal/plans/planproto/planfile.proto`). Its field 13 is
//! `Backend { string type = 1; DynamicValue config = 2; string workspace = 3; }`, and
//! `DynamicValue { bytes msgpack = 1; }` holds the configuration as a cty object in msgpack. Only
//! that path is decoded, by the small walkers below rather than by a protobuf and a msgpack crate: the
//! input is untrusted (any file named on the command line), so both are bounded, never index out of
//! range, and fail with messages that never quote the file's contents.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use serde_json::{Map, Number, Value};

use crate::backends::saved::SavedBackend;

/// The archive entry that holds the plan's protobuf.
const PLAN_ENTRY: &str = "tfplan";
/// The `tfplan` entry of a real plan is a few KiB plus the planned changes; beyond this it is not read
/// (a zip bomb would otherwise inflate into memory).
const MAX_ENTRY_SIZE: u64 = 64 * 1024 * 1024;
/// A backend configuration nests two or three levels (`assume_role.tags`); deeper input is hostile,
/// and the decoder is recursive.
const MAX_DEPTH: usize = 32;

/// `planproto.Plan.backend`.
const PLAN_BACKEND: u64 = 13;
/// `planproto.Backend.type` and `.config`.
const BACKEND_TYPE: u64 = 1;
const BACKEND_CONFIG: u64 = 2;
/// `planproto.DynamicValue.msgpack`.
const DYNAMIC_MSGPACK: u64 = 1;

/// The backend a plan file embeds.
#[derive(Clone)]
pub struct PlanBackend {
    /// `backend.type`, e.g. `s3` (`local` for a root without a backend block).
    pub kind: String,
    /// The merged configuration as decoded from cty: every schema attribute, unset ones null.
    /// Unknown values (which a backend configuration cannot really hold) are left out.
    pub config: Map<String, Value>,
}

impl fmt::Debug for PlanBackend {
    // The config holds secrets in plain text: show only what is safe.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlanBackend")
            .field("kind", &self.kind)
            .field("attributes", &self.config.len())
            .finish_non_exhaustive()
    }
}

impl PlanBackend {
    /// The plan's backend with a saved backend's accessors (`s3_static_credentials`, `string`, …), so
    /// both are read by one set of rules.
    pub fn into_backend(self, path: &Path) -> SavedBackend {
        SavedBackend::from_config(path.to_path_buf(), self.kind, self.config)
    }

    /// The static credentials an S3 backend carries (see [`SavedBackend::s3_static_credentials`]).
    #[cfg(test)]
    pub fn s3_static_credentials(&self) -> Option<crate::backends::saved::StaticCredentials> {
        self.clone()
            .into_backend(Path::new(""))
            .s3_static_credentials()
    }
}

/// Reads the backend embedded in the plan file at `path`.
///
/// `Ok(None)`: not a plan file with a backend — not a regular file, not a zip archive, no `tfplan`
/// entry, or a plan without a backend. `Err`: it looks like a plan but cannot be read; the message
/// never quotes the file's contents.
pub fn read(path: &Path) -> Result<Option<PlanBackend>, String> {
    let file = File::open(path).map_err(|e| format!("cannot open it ({e})"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read it ({e})"))?;
    // `apply DIR` (pre-0.15 syntax) and devices are not plans; reading a directory would also fail.
    if !meta.is_file() {
        return Ok(None);
    }
    let mut archive = match zip::ZipArchive::new(BufReader::new(file)) {
        Ok(a) => a,
        Err(zip::result::ZipError::Io(e)) if e.kind() != io::ErrorKind::UnexpectedEof => {
            return Err(format!("cannot read it ({e})"))
        }
        // Anything else, including a file too short to hold a zip directory, is simply not a plan.
        Err(_) => return Ok(None),
    };
    let entry = match archive.by_name(PLAN_ENTRY) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => {
            return Err(format!(
                "its `{PLAN_ENTRY}` entry cannot be read ({})",
                zip_error(&e)
            ))
        }
    };
    // The declared size can lie; it only spares reading an entry that admits to being too large, and
    // `take` below is the real bound.
    if entry.size() > MAX_ENTRY_SIZE {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    entry
        .take(MAX_ENTRY_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("its `{PLAN_ENTRY}` entry cannot be read ({e})"))?;
    if bytes.len() as u64 > MAX_ENTRY_SIZE {
        return Err(too_large());
    }
    parse_tfplan(&bytes).map_err(|e| format!("its `{PLAN_ENTRY}` entry is not a valid plan ({e})"))
}

fn too_large() -> String {
    format!("its `{PLAN_ENTRY}` entry is larger than {MAX_ENTRY_SIZE} bytes, too large for a plan")
}

/// Describes a zip error without its free-form text, which may be built from the archive's bytes.
fn zip_error(e: &zip::result::ZipError) -> String {
    use zip::result::ZipError;
    match e {
        ZipError::Io(e) => e.to_string(),
        ZipError::UnsupportedArchive(what) => (*what).to_owned(),
        ZipError::CompressionMethodNotSupported(m) => format!("compression method {m}"),
        ZipError::InvalidPassword => "it is encrypted".to_owned(),
        _ => "the archive is damaged".to_owned(),
    }
}

/// Decodes the backend from the bytes of a `tfplan` entry (pure; see [`read`]). `Ok(None)`: the plan
/// has no backend, or one without a type.
pub fn parse_tfplan(bytes: &[u8]) -> Result<Option<PlanBackend>, String> {
    // A singular message field that occurs more than once is merged field by field (protobuf's rule),
    // so each occurrence is folded into the same state: later scalars win.
    let mut kind: Option<String> = None;
    let mut msgpack: Option<&[u8]> = None;
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        // A known field with an unexpected wire type is kept as unknown by Go's protobuf; so here.
        let (PLAN_BACKEND, Wire::Bytes(backend)) = (number, value) else {
            continue;
        };
        for field in Fields::new(backend) {
            match field? {
                (BACKEND_TYPE, Wire::Bytes(t)) => {
                    let t = std::str::from_utf8(t).map_err(|_| "the backend type is not UTF-8")?;
                    kind = Some(t.to_owned());
                }
                (BACKEND_CONFIG, Wire::Bytes(config)) => {
                    for field in Fields::new(config) {
                        if let (DYNAMIC_MSGPACK, Wire::Bytes(m)) = field? {
                            msgpack = Some(m);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let Some(kind) = kind.filter(|k| !k.is_empty()) else {
        return Ok(None);
    };
    let config = match msgpack {
        None | Some([]) => Map::new(),
        Some(m) => match decode_msgpack(m)? {
            Decoded::Value(Value::Object(map)) => map,
            Decoded::Value(Value::Null) | Decoded::Unknown => Map::new(),
            Decoded::Value(_) => return Err("the backend configuration is not an object".into()),
        },
    };
    Ok(Some(PlanBackend { kind, config }))
}

// ---- protobuf ----------------------------------------------------------------------------------

/// A field's payload, by wire type. Only length-delimited payloads are kept; the fixed and varint
/// ones are skipped over but must still be well-formed.
#[derive(Debug, PartialEq)]
enum Wire<'a> {
    Varint,
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32,
}

/// Iterates over the fields of one protobuf message. Yields an error once and then stops.
struct Fields<'a> {
    input: Cursor<'a>,
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Fields<'a> {
        Fields {
            input: Cursor::new(bytes),
            failed: false,
        }
    }

    fn field(&mut self) -> Result<(u64, Wire<'a>), String> {
        let key = self.input.varint()?;
        let number = key >> 3;
        // Field numbers run from 1 to 2^29 - 1.
        if number == 0 || number > (1 << 29) - 1 {
            return Err("a protobuf field number is out of range".into());
        }
        let wire = match key & 7 {
            0 => {
                self.input.varint()?;
                Wire::Varint
            }
            1 => {
                self.input.take(8)?;
                Wire::Fixed64
            }
            2 => {
                let len = self.input.varint()?;
                Wire::Bytes(self.input.take(len)?)
            }
            5 => {
                self.input.take(4)?;
                Wire::Fixed32
            }
            // 3 and 4 are the deprecated groups, which planproto never uses; 6 and 7 do not exist.
            _ => return Err("a protobuf field has an unsupported wire type".into()),
        };
        Ok((number, wire))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Wire<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.input.is_empty() {
            return None;
        }
        let field = self.field();
        self.failed = field.is_err();
        Some(field)
    }
}

/// A bounds-checked reader over a byte slice, shared by both decoders.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next `len` bytes; an error (not a short slice) when fewer remain, so that a length field,
    /// however large, never leads to an allocation or a read past the end.
    fn take(&mut self, len: u64) -> Result<&'a [u8], String> {
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= self.rest.len())
            .ok_or("a length runs past the end of the data")?;
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, String> {
        let (&b, tail) = self
            .rest
            .split_first()
            .ok_or("the data ends in the middle of a value")?;
        self.rest = tail;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let bytes = self.take(N as u64)?;
        // `take` returned exactly N bytes.
        bytes
            .try_into()
            .map_err(|_| "the data ends in the middle of a value".to_owned())
    }

    /// A protobuf base-128 varint: at most 10 bytes, the last holding only the 64th bit.
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return Err("a protobuf varint overflows 64 bits".into());
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a protobuf varint overflows 64 bits".into())
    }
}

// ---- msgpack -----------------------------------------------------------------------------------

/// A decoded msgpack value, or a cty unknown value (a msgpack extension), which has no JSON form and
/// is left out of the maps and arrays that hold it.
#[derive(Debug, PartialEq)]
enum Decoded {
    Value(Value),
    Unknown,
}

/// Decodes one msgpack value. Bytes after it are ignored, as cty's decoder ignores them.
fn decode_msgpack(bytes: &[u8]) -> Result<Decoded, String> {
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
        .filter(|&n| n <= input.rest.len() as u64)
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
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/planfile")
            .join(name)
    }

    fn value(bytes: &[u8]) -> Value {
        match decode_msgpack(bytes).expect("decodes") {
            Decoded::Value(v) => v,
            Decoded::Unknown => panic!("unknown"),
        }
    }

    /// A protobuf length-delimited field.
    fn pb(field: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, (field << 3) | 2);
        put_varint(&mut out, payload.len() as u64);
        out.extend_from_slice(payload);
        out
    }

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A `tfplan` holding only a backend of `kind` with the msgpack `config`.
    fn plan(kind: &str, config: &[u8]) -> Vec<u8> {
        let mut backend = pb(1, kind.as_bytes());
        backend.extend(pb(2, &pb(1, config)));
        backend.extend(pb(3, b"default"));
        let mut out = vec![0x08, 0x03]; // field 1 (ui_mode), varint
        out.extend(pb(13, &backend));
        out
    }

    /// `{"access_key": …, "secret_key": …, "token": nil}` as a fixmap.
    fn s3_config(access: &str, secret: &str) -> Vec<u8> {
        let mut m = vec![0x83];
        for (k, v) in [("access_key", access), ("secret_key", secret)] {
            m.push(0xa0 | k.len() as u8);
            m.extend_from_slice(k.as_bytes());
            m.push(0xa0 | v.len() as u8);
            m.extend_from_slice(v.as_bytes());
        }
        m.extend_from_slice(b"\xa5token\xc0");
        m
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

    #[test]
    fn protobuf_walker() {
        fn fields(b: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
            Fields::new(b).collect()
        }
        assert_eq!(fields(&[]), Ok(vec![]));
        assert_eq!(
            fields(&[
                0x08, 0x96, 0x01, 0x11, 1, 2, 3, 4, 5, 6, 7, 8, 0x1a, 0x01, 0x41, 0x25, 1, 2, 3, 4
            ]),
            Ok(vec![
                (1, Wire::Varint),
                (2, Wire::Fixed64),
                (3, Wire::Bytes(b"A")),
                (4, Wire::Fixed32)
            ])
        );
        // The largest field number, and a ten-byte varint value.
        let mut max = Vec::new();
        put_varint(&mut max, ((1 << 29) - 1) << 3);
        max.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(fields(&max), Ok(vec![((1 << 29) - 1, Wire::Varint)]));
        let bad: &[&[u8]] = &[
            &[0x00],       // field 0
            &[0x0b],       // group start
            &[0x0e],       // wire type 6
            &[0x08],       // varint missing
            &[0x08, 0x80], // varint cut short
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
            ], // 65 bits
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80, 0x01,
            ], // 11 bytes
            &[0x09, 1, 2, 3], // fixed64 cut short
            &[0x0d, 1],    // fixed32 cut short
            &[0x0a, 0x05, 1], // bytes cut short
            &[
                0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ], // absurd length
            &[0xf8, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00], // field number above 2^29 - 1
        ];
        for b in bad {
            assert!(fields(b).is_err(), "{b:?}");
            // An error ends the iteration.
            assert_eq!(Fields::new(b).filter(Result::is_err).count(), 1, "{b:?}");
        }
    }

    #[test]
    fn parses_a_backend() {
        let backend = parse_tfplan(&plan("s3", &s3_config("AKIAEXAMPLE00000QXGR", "s3cr3t")))
            .unwrap()
            .unwrap();
        assert_eq!(backend.kind, "s3");
        assert_eq!(backend.config.len(), 3);
        let creds = backend.s3_static_credentials().unwrap();
        assert_eq!(creds.access_key.expose(), "AKIAEXAMPLE00000QXGR");
        assert_eq!(creds.secret_key.expose(), "s3cr3t");
        assert_eq!(creds.token, None);
        // Debug shows no secret.
        let debug = format!("{backend:?}");
        assert!(
            debug.contains("\"s3\"") && debug.contains("attributes: 3"),
            "{debug}"
        );
        assert!(
            !debug.contains("s3cr3t") && !debug.contains("AKIA"),
            "{debug}"
        );
    }

    #[test]
    fn credentials_need_both_halves_and_s3() {
        let creds = |kind: &str, config: &[u8]| {
            parse_tfplan(&plan(kind, config))
                .unwrap()
                .unwrap()
                .s3_static_credentials()
        };
        assert!(creds("s3", &s3_config("AKIAEXAMPLE", "")).is_none());
        assert!(creds("s3", &s3_config("", "s3cr3t")).is_none());
        assert!(creds("azurerm", &s3_config("AKIAEXAMPLE", "s3cr3t")).is_none());
        assert!(creds("s3", b"\x81\xaaaccess_key\xa1A").is_none());
        // Unknown halves are left out, and so count as missing.
        assert!(creds("s3", b"\x82\xaaaccess_key\xa1A\xaasecret_key\xd4\x00\x00").is_none());
        let with_token = creds(
            "s3",
            b"\x83\xaaaccess_key\xa1A\xaasecret_key\xa1S\xa5token\xa1T",
        )
        .unwrap();
        assert_eq!(
            with_token.token.map(|t| t.expose().to_owned()),
            Some("T".into())
        );
    }

    #[test]
    fn plans_without_a_backend() {
        assert_eq!(parse_tfplan(&[]).map(|b| b.is_none()), Ok(true));
        assert_eq!(parse_tfplan(&[0x08, 0x03]).map(|b| b.is_none()), Ok(true));
        // A backend without a type.
        assert_eq!(
            parse_tfplan(&pb(13, &pb(3, b"default"))).map(|b| b.is_none()),
            Ok(true)
        );
        // Field 13 with a non-message wire type is an unknown field, as in Go.
        assert_eq!(parse_tfplan(&[0x68, 0x01]).map(|b| b.is_none()), Ok(true));
        // A typed backend without a config has an empty one.
        let b = parse_tfplan(&pb(13, &pb(1, b"local"))).unwrap().unwrap();
        assert_eq!((b.kind.as_str(), b.config.len()), ("local", 0));
    }

    #[test]
    fn repeated_backend_fields_merge() {
        // Protobuf merges a repeated singular message: the second occurrence's type wins, the first's
        // config stays.
        let mut bytes = plan("s3", &s3_config("AKIAEXAMPLE", "s3cr3t"));
        bytes.extend(pb(13, &pb(1, b"gcs")));
        let b = parse_tfplan(&bytes).unwrap().unwrap();
        assert_eq!((b.kind.as_str(), b.config.len()), ("gcs", 3));
    }

    #[test]
    fn malformed_plans_are_errors() {
        assert!(parse_tfplan(&plan("s3", b"\x92\x01\x02")).is_err()); // config is an array
        assert!(parse_tfplan(&plan("s3", b"\x81\xa1a")).is_err()); // truncated msgpack
        assert!(parse_tfplan(&pb(13, &pb(1, b"s\xff"))).is_err()); // type not UTF-8
        assert!(parse_tfplan(&[0x6a, 0x05, 0x0a]).is_err()); // truncated backend
        assert!(parse_tfplan(&pb(13, &[0x12, 0x02, 0x0a])).is_err()); // truncated config
                                                                      // Every truncation of a valid plan fails or yields a prefix of it, but never panics.
        let whole = plan("s3", &s3_config("AKIAEXAMPLE", "s3cr3t"));
        for n in 0..whole.len() {
            let _ = parse_tfplan(&whole[..n]);
        }
    }

    #[test]
    fn garbage_never_panics() {
        // A deterministic pseudo-random sweep (xorshift), seeded with real plan prefixes so that the
        // walkers get past the first field.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let base = plan("s3", &s3_config("AKIAEXAMPLE", "s3cr3t"));
        for _ in 0..20_000 {
            let mut bytes = base.clone();
            let flips = next() % 4 + 1;
            for _ in 0..flips {
                let i = (next() % bytes.len() as u64) as usize;
                bytes[i] = next() as u8;
            }
            bytes.truncate((next() % (bytes.len() as u64 + 1)) as usize);
            let _ = parse_tfplan(&bytes);
            let _ = decode_msgpack(&bytes);
        }
    }

    #[test]
    fn reads_a_real_s3_plan() {
        let backend = read(&fixture("s3-static-key.tfplan")).unwrap().unwrap();
        assert_eq!(backend.kind, "s3");
        let creds = backend.s3_static_credentials().unwrap();
        assert_eq!(creds.access_key.expose(), "AKIAFIXTURE000000001");
        assert_eq!(creds.secret_key.expose(), "fixture-secret");
        assert_eq!(creds.token, None);
        assert_eq!(backend.config["bucket"], json!("fixture-bucket"));
        assert_eq!(backend.config["key"], json!("fixture/terraform.tfstate"));
        assert_eq!(backend.config["use_path_style"], json!(true));
        assert_eq!(backend.config["token"], Value::Null);
        assert_eq!(
            backend.config["endpoints"]["sts"],
            json!("http://127.0.0.1:5791")
        );
        assert_eq!(backend.config["endpoints"]["sso"], Value::Null);
    }

    #[test]
    fn reads_a_real_local_plan() {
        // A root without a backend block plans with the implied `local` backend.
        let backend = read(&fixture("local-no-backend.tfplan")).unwrap().unwrap();
        assert_eq!(backend.kind, "local");
        assert_eq!(backend.config.len(), 2);
        assert!(backend.s3_static_credentials().is_none());
    }

    #[test]
    fn files_that_are_not_plans() {
        let dir = tempfile::tempdir().unwrap();
        // A directory (`apply DIR`), an empty file, a text file.
        assert!(read(dir.path()).unwrap().is_none());
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert!(read(&empty).unwrap().is_none());
        let text = dir.path().join("main.tf");
        std::fs::write(&text, b"resource \"terraform_data\" \"x\" {}\n").unwrap();
        assert!(read(&text).unwrap().is_none());
        // A zip archive without a `tfplan` entry.
        let zip = dir.path().join("other.zip");
        let mut w = zip::ZipWriter::new(File::create(&zip).unwrap());
        w.start_file("readme", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut w, b"hello").unwrap();
        w.finish().unwrap();
        assert!(read(&zip).unwrap().is_none());
        // A missing file is an error, which names no content.
        assert!(read(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn damaged_plan_files_are_errors_without_contents() {
        let real = std::fs::read(fixture("s3-static-key.tfplan")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan");
        // Every truncation and many corruptions: no panic, and no error quoting the secret.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for round in 0..400 {
            let mut bytes = real.clone();
            if round < 200 {
                bytes.truncate(real.len() * round / 200);
            } else {
                for _ in 0..4 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let i = (state % bytes.len() as u64) as usize;
                    bytes[i] = (state >> 32) as u8;
                }
            }
            std::fs::write(&path, &bytes).unwrap();
            if let Err(e) = read(&path) {
                assert!(!e.contains("fixture-secret") && !e.contains("AKIA"), "{e}");
            }
        }
    }

    #[test]
    fn a_huge_tfplan_entry_is_refused() {
        // 64 MiB + 1 of zeros deflates to a few KiB: the bound must hold on the inflated size.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.tfplan");
        let mut w = zip::ZipWriter::new(File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        w.start_file(PLAN_ENTRY, options).unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..64 {
            std::io::Write::write_all(&mut w, &chunk).unwrap();
        }
        std::io::Write::write_all(&mut w, &[0]).unwrap();
        w.finish().unwrap();
        let err = read(&path).unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }
}
