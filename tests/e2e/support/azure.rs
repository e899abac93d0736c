//! Azure Blob Storage on loopback for the azurerm backend (#24): Azurite (npm, installed by
//! `shell/test.sh` into `target/azurite`) on plain HTTP, behind an HTTPS front of the test's own
//! (Python, a private CA) that answers as Azure does: Azurite says `AuthorizationFailure` for a bad
//! signature or an expired SAS where Azure says `AuthenticationFailed`, so the front rewrites it.
//! The front also serves the cloud metadata document (`metadata_host=localhost:PORT`) whose storage
//! suffix names the emulator (`emulator.test:PORT`); the blob host `acct.blob.emulator.test` is
//! reached through a loopback CONNECT proxy (`support::forward`), never `/etc/hosts`. It counts
//! tfshim's requests (by user agent) and can play a storage firewall (403 `AuthorizationFailure`
//! for every blob request).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCOUNT: &str = "acct";
pub const CONTAINER: &str = "tfstate";

const SCRIPT: &str = r#"
import base64, datetime, hashlib, hmac, http.client, ipaddress, json, os, socket, ssl, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

upstream, out = int(sys.argv[1]), sys.argv[2]
now = datetime.datetime.now(datetime.timezone.utc)
def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
def build(subject, issuer, key):
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)))
ca_key = ec.generate_private_key(ec.SECP256R1())
ca = (build(name("tfshim azure test CA"), name("tfshim azure test CA"), ca_key)
      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
      .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                   content_commitment=False, key_encipherment=False,
                                   data_encipherment=False, key_agreement=False,
                                   encipher_only=False, decipher_only=False), critical=True)
      .sign(ca_key, hashes.SHA256()))
key = ec.generate_private_key(ec.SECP256R1())
cert = (build(name("localhost"), ca.subject, key)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                       x509.DNSName("*.blob.emulator.test"),
                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256()))
pem = serialization.Encoding.PEM
open(os.path.join(out, "ca.pem"), "wb").write(ca.public_bytes(pem))
open(os.path.join(out, "server.pem"), "wb").write(cert.public_bytes(pem))
open(os.path.join(out, "server.key"), "wb").write(key.private_bytes(
    pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(out, "server.pem"), os.path.join(out, "server.key"))
lock = threading.Lock()
counts = {"tfshim": 0, "other": 0}
mode = {"firewall": False}

def error(code, message):
    return ('\ufeff<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>%s</Message></Error>'
            % (code, message)).encode()

class Front(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def answer(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host = (self.headers.get("Host") or "").split(":")[0]
        if host in ("localhost", "127.0.0.1"):
            port = self.server.server_address[1]
            doc = {"name": "AzureCloud", "portal": "https://localhost:%d/" % port,
                    "resourceManager": "https://localhost:%d/" % port,
                    "authentication": {"loginEndpoint": "https://localhost:%d/" % port,
                                       "audiences": ["https://localhost:%d/" % port],
                                       "tenant": "common", "identityProvider": "AAD"},
                    "graph": "https://localhost:%d/" % port,
                    "microsoftGraphResourceId": "https://localhost:%d/" % port,
                    "suffixes": {"storage": "emulator.test:%d" % port,
                                 "keyVaultDns": "vault.emulator.test"}}
            if "api-version=2020-06-01" in self.path:
                # Terraform 1.0.3 (go-azure-helpers) asks for the list and picks its environment by name.
                doc = [dict(doc, name="TfshimTest")]
            return self.answer(200, [("Content-Type", "application/json")], json.dumps(doc).encode())
        ua = self.headers.get("User-Agent") or ""
        with lock:
            counts["tfshim" if ua.startswith("tfshim") else "other"] += 1
        if mode["firewall"]:
            return self.answer(403, [("x-ms-error-code", "AuthorizationFailure"),
                                     ("Content-Type", "application/xml")],
                               error("AuthorizationFailure", "This request is not authorized to perform this operation."))
        conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=30)
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers.items():
            if k.lower() not in ("connection",):
                conn.putheader(k, v)
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        headers = r.getheaders()
        status = r.status
        code = r.getheader("x-ms-error-code")
        if status == 403 and code == "AuthorizationFailure":
            # Azurite's word for a failed signature or an expired SAS; Azure's is AuthenticationFailed.
            headers = [(k, "AuthenticationFailed" if k.lower() == "x-ms-error-code" else v) for k, v in headers]
            if self.command != "HEAD":
                data = error("AuthenticationFailed", "Server failed to authenticate the request.")
        conn.close()
        self.answer(status, headers, data)
    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = handle_any

class Server(ThreadingHTTPServer):
    daemon_threads = True
    def get_request(self):
        s, a = self.socket.accept()
        return ctx.wrap_socket(s, server_side=True), a

srv = Server(("127.0.0.1", 0), Front)
threading.Thread(target=srv.serve_forever, daemon=True).start()
print(srv.server_address[1], flush=True)
for line in sys.stdin:
    cmd = line.strip()
    with lock:
        if cmd == "firewall":
            mode["firewall"] = True
        elif cmd == "open":
            mode["firewall"] = False
        elif cmd == "reset":
            counts["tfshim"] = counts["other"] = 0
    print("%d %d" % (counts["tfshim"], counts["other"]), flush=True)
"#;

/// Where `shell/test.sh` installs Azurite.
pub fn azurite_bin() -> PathBuf {
    let dir = std::env::var_os("TFSHIM_TEST_AZURITE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/azurite/node_modules/.bin")
        });
    let bin = dir.join("azurite-blob");
    assert!(
        bin.exists(),
        "{} is missing: run shell/test.sh, or `npm install --prefix target/azurite azurite`",
        bin.display()
    );
    bin
}

/// An account key (base64 of 64 bytes, as Azure's), distinct per call.
pub fn new_key(tag: u8) -> String {
    let mut raw = Vec::with_capacity(64);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ (u64::from(std::process::id()) << 20);
    let mut x = seed ^ u64::from(tag).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for _ in 0..64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        raw.push(x as u8);
    }
    b64(&raw)
}

pub fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                T[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// An account SAS (`sv=2019-12-12`, blob service, all resource types; `spr=https,http` because
/// Azurite sees the front's plain HTTP) for `key`, expiring at `se`
/// (`2030-01-01T00:00:00Z`, or `+N`: in N seconds), signed in Python's `hmac` (independent of tfshim's signing code).
pub fn account_sas(key: &str, se: &str) -> String {
    let script = r#"
import base64, datetime, hashlib, hmac, sys, urllib.parse
key, se = sys.argv[1], sys.argv[2]
if se.startswith("+"):
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=int(se[1:]))
    se = at.strftime("%Y-%m-%dT%H:%M:%SZ")
f = {"sv": "2019-12-12", "ss": "b", "srt": "sco", "sp": "rwdlac", "st": "2020-01-01T00:00:00Z", "se": se, "spr": "https,http"}
s = "\n".join(["acct", f["sp"], f["ss"], f["srt"], f["st"], f["se"], "", f["spr"], f["sv"], ""])
f["sig"] = base64.b64encode(hmac.new(base64.b64decode(key), s.encode(), hashlib.sha256).digest()).decode()
print("&".join("%s=%s" % (k, urllib.parse.quote(v, safe="")) for k, v in f.items()))
"#;
    let out = Command::new("python3")
        .args(["-c", script, key, se])
        .output()
        .expect("python3");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Azurite plus the Azure-speaking HTTPS front.
pub struct AzureStorage {
    /// The front's port: `metadata_host=localhost:PORT`, blobs at `acct.blob.emulator.test:PORT`.
    pub port: u16,
    pub ca: PathBuf,
    azurite: Option<Child>,
    azurite_port: u16,
    data: PathBuf,
    front: Child,
    front_out: BufReader<std::process::ChildStdout>,
}

impl AzureStorage {
    /// Azurite serving account `acct` with `key`; its files under `dir`.
    pub fn start(dir: &Path, key: &str) -> AzureStorage {
        let data = dir.join("azurite");
        std::fs::create_dir_all(&data).unwrap();
        let azurite_port = free_port();
        let mut front = Command::new("python3")
            .args(["-c", SCRIPT, &azurite_port.to_string()])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let mut front_out = BufReader::new(front.stdout.take().unwrap());
        let mut line = String::new();
        front_out.read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!("the Azure front did not start: it needs Python's `cryptography` package")
        });
        let mut s = AzureStorage {
            port,
            ca: dir.join("ca.pem"),
            azurite: None,
            azurite_port,
            data,
            front,
            front_out,
        };
        s.restart_with(key);
        s
    }

    /// (Re)starts Azurite with `key` as the account's only key (a rotation); the blobs stay.
    pub fn restart_with(&mut self, key: &str) {
        if let Some(mut old) = self.azurite.take() {
            // SIGTERM: Azurite writes its metadata (the containers, the blobs) before it exits.
            let _ = Command::new("kill")
                .args(["-TERM", &old.id().to_string()])
                .status();
            let _ = old.wait();
        }
        let child = Command::new("node")
            .arg(azurite_bin())
            .args(["--blobHost", "127.0.0.1", "--blobPort"])
            .arg(self.azurite_port.to_string())
            .arg("--location")
            .arg(&self.data)
            .args(["--silent", "--skipApiVersionCheck"])
            .env("AZURITE_ACCOUNTS", format!("{ACCOUNT}:{key}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node");
        self.azurite = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.azurite_port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "Azurite did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn command(&mut self, cmd: &str) -> (usize, usize) {
        let stdin = self.front.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.front_out.read_line(&mut line).unwrap();
        let mut it = line.split_whitespace().map(|n| n.parse().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    }

    /// Every blob request gets 403 `AuthorizationFailure` (a storage firewall), or no longer.
    pub fn firewall(&mut self, on: bool) {
        self.command(if on { "firewall" } else { "open" });
    }

    /// Blob requests so far: (tfshim's, terraform's).
    pub fn requests(&mut self) -> (usize, usize) {
        self.command("count")
    }

    pub fn reset_counts(&mut self) {
        self.command("reset");
    }

    /// The container `tfstate`, created with `key` through the front (as a user would).
    pub fn create_container(&mut self, key: &str) {
        let script = r#"
import base64, hashlib, hmac, http.client, ssl, sys, email.utils
port, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
date = email.utils.formatdate(usegmt=True)
s = "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:%s\nx-ms-version:2020-10-02\n/acct/tfstate\nrestype:container" % date
sig = base64.b64encode(hmac.new(base64.b64decode(key), s.encode(), hashlib.sha256).digest()).decode()
c = http.client.HTTPSConnection("127.0.0.1", port, context=ssl.create_default_context(cafile=ca))
c.putrequest("PUT", "/tfstate?restype=container", skip_host=True)
c.putheader("Host", "acct.blob.emulator.test:%d" % port)
c.putheader("x-ms-date", date); c.putheader("x-ms-version", "2020-10-02")
c.putheader("Authorization", "SharedKey acct:" + sig); c.putheader("Content-Length", "0")
c.putheader("User-Agent", "setup")
c.endheaders()
r = c.getresponse(); r.read()
print(r.status)
"#;
        let out = Command::new("python3")
            .args(["-c", script, &self.port.to_string(), key])
            .arg(&self.ca)
            .output()
            .expect("python3");
        let status = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert_eq!(
            status,
            "201",
            "creating the container: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for AzureStorage {
    fn drop(&mut self) {
        if let Some(mut a) = self.azurite.take() {
            let _ = a.kill();
            let _ = a.wait();
        }
        let _ = self.front.kill();
        let _ = self.front.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
