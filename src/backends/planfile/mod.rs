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
//! range, and fail with messages that never quote the file's contents: [`wire`] walks protobuf,
//! [`msgpack`] decodes cty's msgpack.

mod msgpack;
mod wire;

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::Path;

use serde_json::{Map, Value};

use crate::backends::saved::SavedBackend;

use msgpack::{decode_msgpack, Decoded};
use wire::{Fields, Wire};

/// The archive entry that holds the plan's protobuf.
const PLAN_ENTRY: &str = "tfplan";
/// The `tfplan` entry of a real plan is a few KiB plus the planned changes; beyond this it is not read
/// (a zip bomb would otherwise inflate into memory).
const MAX_ENTRY_SIZE: u64 = 64 * 1024 * 1024;

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
    // `apply DIR` (pre-0.15 syntax) and devices are not plans. Asked before opening: Windows does
    // not open a directory as a file at all ("Access denied").
    let meta = fs::metadata(path).map_err(|e| format!("cannot open it ({e})"))?;
    if !meta.is_file() {
        return Ok(None);
    }
    let file = File::open(path).map_err(|e| format!("cannot open it ({e})"))?;
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

    /// A protobuf length-delimited field.
    fn pb(field: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, (field << 3) | 2);
        put_varint(&mut out, payload.len() as u64);
        out.extend_from_slice(payload);
        out
    }

    pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
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
