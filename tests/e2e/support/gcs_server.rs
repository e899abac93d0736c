//! A fake of Google Cloud Storage and Google's OAuth token endpoint on 127.0.0.1, started by the
//! tests themselves (issue #23), serving what terraform's gcs backend really sends (1.11.4 via
//! `storage_custom_endpoint = "http://127.0.0.1:PORT/storage/v1/"`):
//! - the JSON API: list `GET /storage/v1/b/B/o?prefix=…`, object metadata `GET /storage/v1/b/B/o/O`,
//!   upload `POST /upload/storage/v1/b/B/o?uploadType=multipart&name=…` (with `ifGenerationMatch=0`:
//!   the lock's conditional create, 412 when it exists), `DELETE /storage/v1/b/B/o/O` (with
//!   `ifGenerationMatch`, the unlock);
//! - the XML API read `GET /B/O`, which 1.11.4 uses to read the state;
//! - `POST /token`: a JWT-bearer grant whose RS256 signature is verified against the service
//!   account's public key (`ring`), or a refresh-token grant; either issues a new token;
//! - `GET /computeMetadata/v1/instance/service-accounts/default/token` with `Metadata-Flavor:
//!   Google`, as a GCE metadata server (`GCE_METADATA_HOST`).
//!
//! Every storage request needs `Authorization: Bearer T` with T issued and not expired: otherwise
//! 401 with Google's `authError` body; a token marked forbidden gets 403. Every request is logged
//! (method, path, user agent, the token's label — never the token) so tests can count checks.
//!
//! Plain `std` threads, one per connection, `Connection: close`; request bodies with a length or
//! chunked (Go's client streams uploads).

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub user_agent: String,
    /// The label of the bearer token presented, if one was.
    pub token: Option<String>,
    pub status: u16,
}

#[derive(Default)]
struct State {
    /// token → label; only these are accepted.
    valid: HashMap<String, String>,
    forbidden: HashSet<String>,
    /// client_email → the public key (PKCS#1 `RSAPublicKey` DER).
    service_accounts: HashMap<String, Vec<u8>>,
    refresh_tokens: HashSet<String>,
    issued: usize,
    buckets: HashSet<String>,
    /// (bucket, object) → (contents, generation).
    objects: HashMap<(String, String), (Vec<u8>, i64)>,
    generation: i64,
    log: Vec<Logged>,
    fail_with: Option<u16>,
    /// The metadata server has a service account attached (else its token is 404).
    metadata_account: bool,
}

pub struct GcsServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl GcsServer {
    pub fn start(bucket: &str) -> GcsServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        state.lock().unwrap().buckets.insert(bucket.to_owned());
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut conn = conn;
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    handle(&mut conn, port, &s);
                    let _ = conn.shutdown(Shutdown::Write);
                });
            }
        });
        GcsServer { port, state }
    }

    /// The fake as `https://storage.googleapis.com` for a terraform without
    /// `storage_custom_endpoint` (1.0.3): a proxy on loopback (`HTTPS_PROXY`) that answers every
    /// `CONNECT` itself and speaks TLS with a certificate for Google's names, signed by a CA of the
    /// test's own (`SSL_CERT_FILE`, which Go and tfshim both read). Nothing leaves loopback.
    pub fn google_front(&self, dir: &Path) -> GoogleFront {
        let (ca, config) = test_ca(dir);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy_port = listener.local_addr().unwrap().port();
        let (s, port) = (self.state.clone(), self.port);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (s, config) = (s.clone(), config.clone());
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    let Some(connect) = read_request(&mut conn) else {
                        return;
                    };
                    if connect.method != "CONNECT"
                        || conn
                            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                            .is_err()
                    {
                        return;
                    }
                    let Ok(tls) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let mut stream = rustls::StreamOwned::new(tls, conn);
                    handle(&mut stream, port, &s);
                    stream.conn.send_close_notify();
                    let _ = stream.flush();
                    let _ = stream.sock.shutdown(Shutdown::Write);
                });
            }
        });
        GoogleFront {
            proxy: format!("http://127.0.0.1:{proxy_port}"),
            ca,
        }
    }

    /// `storage_custom_endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/storage/v1/", self.port)
    }

    /// A service account key's `token_uri`.
    pub fn token_uri(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// `GCE_METADATA_HOST`.
    pub fn metadata_host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A new valid token (`gcloud auth print-access-token`).
    pub fn grant(&self, label: &str) -> String {
        let mut s = self.state.lock().unwrap();
        issue(&mut s, label)
    }

    /// The token is now expired: 401.
    pub fn expire(&self, token: &str) {
        self.state.lock().unwrap().valid.remove(token);
    }

    /// The token is valid but may not touch the bucket: 403.
    pub fn forbid(&self, token: &str) {
        self.state
            .lock()
            .unwrap()
            .forbidden
            .insert(token.to_owned());
    }

    pub fn add_service_account(&self, email: &str, public_key_der: Vec<u8>) {
        let mut s = self.state.lock().unwrap();
        s.service_accounts.insert(email.to_owned(), public_key_der);
    }

    /// Whether the metadata server gives tokens (a VM with a service account attached).
    pub fn attach_metadata_account(&self, attached: bool) {
        self.state.lock().unwrap().metadata_account = attached;
    }

    /// Answer every request with this status (a failing service).
    pub fn fail_with(&self, status: Option<u16>) {
        self.state.lock().unwrap().fail_with = status;
    }

    pub fn object(&self, bucket: &str, name: &str) -> Option<Vec<u8>> {
        let s = self.state.lock().unwrap();
        s.objects
            .get(&(bucket.to_owned(), name.to_owned()))
            .map(|(c, _)| c.clone())
    }

    pub fn object_names(&self) -> Vec<String> {
        let s = self.state.lock().unwrap();
        let mut names: Vec<String> = s.objects.keys().map(|(_, n)| n.clone()).collect();
        names.sort();
        names
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// Requests tfshim made (its user agent says so).
    pub fn tfshim_requests(&self) -> Vec<Logged> {
        self.log()
            .into_iter()
            .filter(|l| l.user_agent.starts_with("tfshim"))
            .collect()
    }
}

/// What [`GcsServer::google_front`] gives: the proxy for `HTTPS_PROXY`, the CA for `SSL_CERT_FILE`.
pub struct GoogleFront {
    pub proxy: String,
    pub ca: PathBuf,
}

/// A CA and a server certificate for `storage.googleapis.com` and `oauth2.googleapis.com`
/// (`openssl`), and the TLS configuration that serves it.
fn test_ca(dir: &Path) -> (PathBuf, Arc<rustls::ServerConfig>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is needed for the test CA");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec[..],
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=tfshim gcs test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ][..],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec[..],
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=storage.googleapis.com",
        ][..],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:storage.googleapis.com,DNS:oauth2.googleapis.com\n\
         basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let chain = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    (dir.join("ca.pem"), Arc::new(config))
}

fn issue(s: &mut State, label: &str) -> String {
    s.issued += 1;
    let token = format!(
        "ya29.fake{}x{}x{}",
        s.issued,
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    s.valid
        .insert(token.clone(), format!("{label}#{}", s.issued));
    token
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn unbase64url(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let mut n = 0;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// A JWT-bearer assertion: the client_email whose key signed it, when the signature verifies, the
/// audience is this endpoint and it has not expired.
fn verify_jwt(s: &State, assertion: &str, audience: &str) -> Option<String> {
    let mut parts = assertion.split('.');
    let (h, c, sig) = (parts.next()?, parts.next()?, parts.next()?);
    let header: Value = serde_json::from_slice(&unbase64url(h)?).ok()?;
    if header["alg"] != "RS256" {
        return None;
    }
    let claims: Value = serde_json::from_slice(&unbase64url(c)?).ok()?;
    let iss = claims["iss"].as_str()?;
    let key = s.service_accounts.get(iss)?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, key)
        .verify(format!("{h}.{c}").as_bytes(), &unbase64url(sig)?)
        .ok()?;
    let exp = claims["exp"].as_u64()?;
    (claims["aud"] == audience && exp > now()).then(|| iss.to_owned())
}

/// A request as read off the wire.
struct Incoming {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

fn read_request(conn: &mut impl Read) -> Option<Incoming> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let target = first.next().unwrap_or("").to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut raw = buf[head_end..].to_vec();
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        // Read until the last chunk, then decode.
        while !raw.windows(5).any(|w| w == b"0\r\n\r\n") {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&chunk[..n]),
            }
        }
        let mut body = Vec::new();
        let mut rest = &raw[..];
        while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
            let size_text = String::from_utf8_lossy(&rest[..i]);
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                break;
            }
            let start = i + 2;
            body.extend_from_slice(rest.get(start..start + size)?);
            rest = rest.get(start + size + 2..)?;
        }
        body
    } else {
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while raw.len() < length {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&chunk[..n]),
            }
        }
        raw
    };
    Some(Incoming {
        method,
        target,
        headers,
        body,
    })
}

/// The parts of a `multipart/related` body: (metadata JSON, contents).
fn multipart(content_type: &str, body: &[u8]) -> Option<(Value, Vec<u8>)> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let text = body;
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(i) = find(rest, delimiter.as_bytes()) {
        let after = &rest[i + delimiter.len()..];
        if after.starts_with(b"--") {
            break;
        }
        let next = find(after, delimiter.as_bytes()).unwrap_or(after.len());
        let part = &after[..next];
        let start = find(part, b"\r\n\r\n")? + 4;
        let mut content = &part[start..];
        if content.ends_with(b"\r\n") {
            content = &content[..content.len() - 2];
        }
        parts.push(content.to_vec());
        rest = &after[next..];
    }
    let meta: Value = serde_json::from_slice(parts.first()?).ok()?;
    Some((meta, parts.get(1).cloned().unwrap_or_default()))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn object_json(bucket: &str, name: &str, contents: &[u8], generation: i64) -> Value {
    json!({
        "kind": "storage#object",
        "id": format!("{bucket}/{name}/{generation}"),
        "selfLink": format!("http://127.0.0.1/storage/v1/b/{bucket}/o/{name}"),
        "name": name,
        "bucket": bucket,
        "generation": generation.to_string(),
        "metageneration": "1",
        "contentType": "application/json",
        "storageClass": "STANDARD",
        "size": contents.len().to_string(),
        "timeCreated": "2026-12-08T00:00:00.000Z",
        "updated": "2026-12-08T00:00:00.000Z",
    })
}

fn error(code: u16, message: &str, reason: &str) -> (u16, Vec<u8>) {
    let body = json!({"error": {"code": code, "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}]}});
    (code, body.to_string().into_bytes())
}

/// One request on `conn` (plain, or TLS behind [`GcsServer::google_front`]); `port` is the plain
/// listener's (the token endpoint's audience).
fn handle(conn: &mut (impl Read + Write), port: u16, state: &Mutex<State>) {
    let Some(Incoming {
        method,
        target,
        headers,
        body,
    }) = read_request(conn)
    else {
        return;
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let (path, query) = (path.to_owned(), query.to_owned());
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let mut s = state.lock().unwrap();
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let label = bearer.as_ref().map(|t| {
        s.valid
            .get(t)
            .cloned()
            .unwrap_or_else(|| "unknown or expired".into())
    });
    let token_ok = bearer.as_ref().is_some_and(|t| s.valid.contains_key(t));
    let forbidden = bearer.as_ref().is_some_and(|t| s.forbidden.contains(t));
    let mut extra_headers = String::new();
    let (status, reply) = if let Some(code) = s.fail_with {
        error(code, "failing on purpose", "backendError")
    } else if method == "POST" && path == "/token" {
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        let audience = format!("http://127.0.0.1:{port}/token");
        let granted = match form.get("grant_type").map(String::as_str) {
            Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => form
                .get("assertion")
                .and_then(|a| verify_jwt(&s, a, &audience)),
            Some("refresh_token") => form
                .get("refresh_token")
                .filter(|r| s.refresh_tokens.contains(*r))
                .map(|_| "user".to_owned()),
            _ => None,
        };
        match granted {
            Some(who) => {
                let token = issue(&mut s, &who);
                let answer =
                    json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"});
                (200, answer.to_string().into_bytes())
            }
            None => (
                400,
                br#"{"error":"invalid_grant","error_description":"Invalid grant"}"#.to_vec(),
            ),
        }
    } else if path.starts_with("/computeMetadata/") {
        if headers.get("metadata-flavor").map(String::as_str) != Some("Google") {
            (403, b"Missing Metadata-Flavor header".to_vec())
        } else if path.ends_with("/service-accounts/default/token") && s.metadata_account {
            let token = issue(&mut s, "metadata");
            let answer = json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"});
            extra_headers.push_str("Metadata-Flavor: Google\r\n");
            (200, answer.to_string().into_bytes())
        } else {
            extra_headers.push_str("Metadata-Flavor: Google\r\n");
            (404, Vec::new())
        }
    } else if !token_ok {
        extra_headers.push_str(
            "WWW-Authenticate: Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"\r\n",
        );
        error(401, "Invalid Credentials", "authError")
    } else if forbidden {
        error(
            403,
            "caller does not have storage.objects.list access to the Google Cloud Storage bucket.",
            "forbidden",
        )
    } else {
        storage(
            &mut s,
            &method,
            &path,
            &params,
            &headers,
            &body,
            &mut extra_headers,
        )
    };
    let mut answer = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json; charset=UTF-8\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.len()
    )
    .into_bytes();
    if method != "HEAD" {
        answer.extend_from_slice(&reply);
    }
    s.log.push(Logged {
        method,
        path,
        query,
        user_agent: headers.get("user-agent").cloned().unwrap_or_default(),
        token: label,
        status,
    });
    drop(s);
    let _ = conn.write_all(&answer);
    let _ = conn.flush();
}

/// The JSON and XML APIs, for an authorized request.
fn storage(
    s: &mut State,
    method: &str,
    path: &str,
    params: &HashMap<String, String>,
    headers: &HashMap<String, String>,
    body: &[u8],
    extra_headers: &mut String,
) -> (u16, Vec<u8>) {
    let not_found = || error(404, "No such object.", "notFound");
    let no_bucket = || error(404, "The specified bucket does not exist.", "notFound");
    let segments: Vec<&str> = path.trim_start_matches('/').splitn(6, '/').collect();
    match (method, segments.as_slice()) {
        // JSON API list and object.
        ("GET", ["storage", "v1", "b", bucket, "o"]) => {
            if !s.buckets.contains(*bucket) {
                return no_bucket();
            }
            let prefix = params.get("prefix").cloned().unwrap_or_default();
            let delimiter = params.get("delimiter").cloned().unwrap_or_default();
            let max: usize = params
                .get("maxResults")
                .and_then(|m| m.parse().ok())
                .unwrap_or(1000);
            let mut names: Vec<&(String, String)> = s
                .objects
                .keys()
                .filter(|(b, n)| b == bucket && n.starts_with(&prefix))
                .collect();
            names.sort();
            let mut items = Vec::new();
            let mut prefixes = Vec::new();
            for (b, n) in names {
                let rest = &n[prefix.len()..];
                match rest.find(&delimiter).filter(|_| !delimiter.is_empty()) {
                    Some(i) => {
                        let p = format!("{prefix}{}", &rest[..=i + delimiter.len() - 1]);
                        if !prefixes.contains(&p) {
                            prefixes.push(p);
                        }
                    }
                    None => {
                        let (c, g) = &s.objects[&(b.clone(), n.clone())];
                        items.push(object_json(b, n, c, *g));
                    }
                }
            }
            items.truncate(max);
            let answer = json!({"kind": "storage#objects", "items": items, "prefixes": prefixes});
            (200, answer.to_string().into_bytes())
        }
        ("GET", ["storage", "v1", "b", bucket, "o", object]) => {
            let name = percent_decode(object);
            match s.objects.get(&(bucket.to_string(), name.clone())) {
                Some((c, g)) if params.get("alt").map(String::as_str) == Some("media") => {
                    extra_headers.push_str(&format!("X-Goog-Generation: {g}\r\n"));
                    (200, c.clone())
                }
                Some((c, g)) => (
                    200,
                    object_json(bucket, &name, c, *g).to_string().into_bytes(),
                ),
                None => not_found(),
            }
        }
        ("DELETE", ["storage", "v1", "b", bucket, "o", object]) => {
            let key = (bucket.to_string(), percent_decode(object));
            match s.objects.get(&key) {
                None => not_found(),
                Some((_, g))
                    if params
                        .get("ifGenerationMatch")
                        .is_some_and(|want| want != &g.to_string()) =>
                {
                    error(412, "Precondition Failed", "conditionNotMet")
                }
                Some(_) => {
                    s.objects.remove(&key);
                    (204, Vec::new())
                }
            }
        }
        ("POST", ["upload", "storage", "v1", "b", bucket, "o"]) => {
            if !s.buckets.contains(*bucket) {
                return no_bucket();
            }
            let content_type = headers.get("content-type").cloned().unwrap_or_default();
            let Some((meta, contents)) = multipart(&content_type, body) else {
                return error(400, "Unsupported upload", "invalid");
            };
            let Some(name) = meta["name"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| params.get("name").cloned())
            else {
                return error(400, "Required object name", "required");
            };
            let key = (bucket.to_string(), name.clone());
            if params.get("ifGenerationMatch").map(String::as_str) == Some("0")
                && s.objects.contains_key(&key)
            {
                return error(412, "Precondition Failed", "conditionNotMet");
            }
            s.generation += 1;
            let generation = 1_700_000_000_000_000 + s.generation;
            let answer = object_json(bucket, &name, &contents, generation);
            s.objects.insert(key, (contents, generation));
            (200, answer.to_string().into_bytes())
        }
        // The XML API read (`GET /BUCKET/OBJECT`).
        ("GET", [bucket, ..]) if s.buckets.contains(*bucket) => {
            let name = percent_decode(
                path.trim_start_matches('/')
                    .split_once('/')
                    .map_or("", |(_, o)| o),
            );
            match s.objects.get(&(bucket.to_string(), name)) {
                Some((c, g)) => {
                    extra_headers.push_str(&format!(
                        "X-Goog-Generation: {g}\r\nX-Goog-Metageneration: 1\r\n"
                    ));
                    (200, c.clone())
                }
                None => (
                    404,
                    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>".to_vec(),
                ),
            }
        }
        _ => error(404, "Not Found", "notFound"),
    }
}
