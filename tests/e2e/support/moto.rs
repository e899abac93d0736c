//! Two real moto servers on loopback, shared by every test of this binary
//! (docs/terraform-backend.md, "moto as the test STS and S3"): `auth` enforces credentials after the
//! first few requests and serves STS and IAM, so a deleted key gets the seed's 403
//! InvalidClientTokenId; `open` serves S3 without auth (moto's S3 rejects terraform's signed
//! ListObjectsV2 when auth is on, getmoto/moto#5948).
//!
//! Each server runs under a tiny Python supervisor that stops it when its stdin closes, which happens
//! when this test process exits however it exits: no server outlives the test run.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

pub const BUCKET: &str = "tfstate";
const REGION: &str = "us-east-1";

/// An access key pair created on the moto server.
#[derive(Clone, Debug)]
pub struct Key {
    pub id: String,
    pub secret: String,
}

pub struct Moto {
    pub auth_port: u16,
    pub open_port: u16,
    admin: Key,
    _servers: Vec<Child>,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

/// The shared servers, started on first use.
pub fn moto() -> &'static Moto {
    MOTO.get_or_init(Moto::start)
}

fn python() -> String {
    std::env::var("TFSHIM_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

const SUPERVISOR: &str = "import subprocess, sys\n\
p = subprocess.Popen([sys.executable, '-m', 'moto.server', '-H', '127.0.0.1', '-p', sys.argv[1]],\n\
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n\
sys.stdin.read()\n\
p.terminate()\n\
p.wait()\n";

fn spawn_server(port: u16, auth: bool) -> Child {
    let check = Command::new(python())
        .args(["-c", "import moto.server, flask"])
        .output();
    match check {
        Ok(o) if o.status.success() => {}
        _ => panic!(
            "moto's server is not installed for `{}`: run `pip install 'moto[server]'` \
             (the README's test command does this)",
            python()
        ),
    }
    let mut cmd = Command::new(python());
    cmd.args(["-c", SUPERVISOR, &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if auth {
        // The first 3 requests (create the admin user, its policy, its key) are free; every later
        // request is checked.
        cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "3");
    }
    cmd.spawn().expect("could not start the moto supervisor")
}

fn wait_until_up(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok((200, _)) = http(port, "GET", "/moto-api/", &[], b"") {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("moto on port {port} did not come up within 60 s");
}

/// One HTTP/1.1 request over loopback (`Connection: close`); returns the status and the body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_owned();
    Ok((status, body))
}

/// Form-encodes like Python's `urlencode` (moto re-encodes the parsed form with it to check the
/// signature, so `*` must be `%2A` here too).
fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn xml(body: &str, tag: &str) -> Option<String> {
    let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + body[start..].find(&format!("</{tag}>"))?;
    Some(body[start..end].to_owned())
}

impl Moto {
    fn start() -> Moto {
        let (auth_port, open_port) = (free_port(), free_port());
        let servers = vec![
            spawn_server(auth_port, true),
            spawn_server(open_port, false),
        ];
        wait_until_up(auth_port);
        wait_until_up(open_port);
        // moto routes an unsigned request by the credential scope of its Authorization header, so the
        // three free requests carry a dummy one (it is not checked while requests are free).
        let dummy = vec![(
            "Authorization".to_owned(),
            "AWS4-HMAC-SHA256 Credential=AKIDUMMY/20250101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00".to_owned(),
        )];
        let mut admin = None;
        for (i, body) in user_requests("tfshim-admin").into_iter().enumerate() {
            let (status, text) = iam_post(auth_port, &dummy, &body);
            assert_eq!(status, 200, "moto bootstrap request {i} failed: {text}");
            if i == 2 {
                admin = Some(parse_key(&text));
            }
        }
        let (status, text) = http(open_port, "PUT", &format!("/{BUCKET}"), &[], b"").unwrap();
        assert_eq!(status, 200, "creating the state bucket failed: {text}");
        Moto {
            auth_port,
            open_port,
            admin: admin.unwrap(),
            _servers: servers,
        }
    }

    /// A new IAM user with an allow-all inline policy and one access key.
    pub fn new_user(&self, name: &str) -> Key {
        let mut key = None;
        for (i, body) in user_requests(name).into_iter().enumerate() {
            let text = self.signed_iam(&self.admin, &body);
            if i == 2 {
                key = Some(parse_key(&text));
            }
        }
        key.unwrap()
    }

    /// Rotates `old` the way the seed's author does: a new key is created, the old one deleted.
    pub fn rotate(&self, user: &str, old: &Key) -> Key {
        let created = self.signed_iam(
            &self.admin,
            &form(&[
                ("Action", "CreateAccessKey"),
                ("UserName", user),
                ("Version", "2010-05-08"),
            ]),
        );
        let new = parse_key(&created);
        self.delete_key(user, old);
        new
    }

    pub fn delete_key(&self, user: &str, key: &Key) {
        self.signed_iam(
            &self.admin,
            &form(&[
                ("Action", "DeleteAccessKey"),
                ("UserName", user),
                ("AccessKeyId", &key.id),
                ("Version", "2010-05-08"),
            ]),
        );
    }

    fn signed_iam(&self, key: &Key, body: &str) -> String {
        let url = format!("http://127.0.0.1:{}/", self.auth_port);
        let identity = Credentials::new(&key.id, &key.secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name("iam")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let host = format!("127.0.0.1:{}", self.auth_port);
        let base = [
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("host", host.as_str()),
        ];
        let signable = SignableRequest::new(
            "POST",
            &url,
            base.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut headers: Vec<(String, String)> = vec![(
            "Content-Type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        )];
        headers.extend(
            instructions
                .headers()
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        let (status, text) = iam_post(self.auth_port, &headers, body);
        assert_eq!(status, 200, "signed IAM call failed: {text}");
        text
    }
}

fn user_requests(name: &str) -> Vec<String> {
    let policy =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    vec![
        form(&[
            ("Action", "CreateUser"),
            ("UserName", name),
            ("Version", "2010-05-08"),
        ]),
        form(&[
            ("Action", "PutUserPolicy"),
            ("UserName", name),
            ("PolicyName", "all"),
            ("PolicyDocument", policy),
            ("Version", "2010-05-08"),
        ]),
        form(&[
            ("Action", "CreateAccessKey"),
            ("UserName", name),
            ("Version", "2010-05-08"),
        ]),
    ]
}

fn iam_post(port: u16, headers: &[(String, String)], body: &str) -> (u16, String) {
    let mut all = headers.to_vec();
    if !all
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        all.push((
            "Content-Type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        ));
    }
    http(port, "POST", "/", &all, body.as_bytes()).expect("moto request failed")
}

fn parse_key(text: &str) -> Key {
    Key {
        id: xml(text, "AccessKeyId").expect("no AccessKeyId in CreateAccessKey's answer"),
        secret: xml(text, "SecretAccessKey").expect("no SecretAccessKey in the answer"),
    }
}
