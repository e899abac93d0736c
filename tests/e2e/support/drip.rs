//! A front for a plain-HTTP server (the state server, or the STS proxy in front of moto) that
//! misbehaves for tfshim only: the first request of each connection says who is asking (tfshim's
//! user agents carry `tfshim`), terraform's connections are relayed untouched, tfshim's meet the
//! front's mode (#20):
//! - `drip`: an answer whose bytes — on TLS the bytes of one encrypted record, below the TLS
//!   layer — arrive one every 0.25 s, for over an hour;
//! - `slow:SECS`: relayed, after a pause;
//! - `pass`: relayed.
//!
//! Over TLS it serves, per connection, the certificate named in `DIR/serve` (default `server`,
//! signed by `DIR/ca.pem`); the others are self-signed `CA:TRUE` certificates for pinning tests:
//! `pinned` (for 127.0.0.1 and localhost), `pinned_wrong_host` (example.test only),
//! `pinned_client_auth` (EKU clientAuth only), `pinned_expired`, all four in `DIR/pins.pem`, and
//! `unpinned` (not in it). Python's `ssl` (a memory BIO, so that the encrypted bytes can be
//! dripped) and `cryptography` (moto's dependency); the process ends when the handle is dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const SCRIPT: &str = r#"
import datetime, ipaddress, os, socket, ssl, sys, threading, time
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

upstream, out, use_tls = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "tls"
now = datetime.datetime.now(datetime.timezone.utc)
day = datetime.timedelta(days=1)
pem = serialization.Encoding.PEM
def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
def san(*names):
    out = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(out)
def save(stem, cert, key):
    open(os.path.join(out, stem + ".pem"), "wb").write(cert.public_bytes(pem))
    open(os.path.join(out, stem + ".key"), "wb").write(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert.public_bytes(pem)
def builder(subject, issuer, key, before=now - day, after=now + day):
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(before).not_valid_after(after))
ca_key = ec.generate_private_key(ec.SECP256R1())
ca = (builder(name("tfshim test CA"), name("tfshim test CA"), ca_key)
      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
      .sign(ca_key, hashes.SHA256()))
open(os.path.join(out, "ca.pem"), "wb").write(ca.public_bytes(pem))
key = ec.generate_private_key(ec.SECP256R1())
save("server", builder(name("localhost"), ca.subject, key)
     .add_extension(san("localhost", "127.0.0.1"), critical=False)
     .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
     .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
     .sign(ca_key, hashes.SHA256()), key)
# Self-signed with CA:TRUE, as `openssl req -x509` makes them.
def self_signed(stem, names, eku=None, before=now - day, after=now + day):
    k = ec.generate_private_key(ec.SECP256R1())
    b = (builder(name(names[0]), name(names[0]), k, before, after)
         .add_extension(san(*names), critical=False)
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False))
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return save(stem, b.sign(k, hashes.SHA256()), k)
pins = self_signed("pinned", ["localhost", "127.0.0.1"])
pins += self_signed("pinned_wrong_host", ["example.test"])
pins += self_signed("pinned_client_auth", ["localhost", "127.0.0.1"], [ExtendedKeyUsageOID.CLIENT_AUTH])
pins += self_signed("pinned_expired", ["localhost", "127.0.0.1"], None, now - 3 * day, now - 2 * day)
open(os.path.join(out, "pins.pem"), "wb").write(pins)
self_signed("unpinned", ["localhost", "127.0.0.1"])

def setting(file, default):
    try:
        return open(os.path.join(out, file)).read().strip() or default
    except OSError:
        return default

class Plain:
    def __init__(self, sock):
        self.sock = sock
    def recv(self):
        return self.sock.recv(65536)
    def send(self, data):
        self.sock.sendall(data)
    def encode(self, data):
        return data

class Tls:
    """TLS on a memory BIO: the encrypted bytes go through our hands (to be dripped)."""
    def __init__(self, sock):
        stem = os.path.join(out, setting("serve", "server"))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(stem + ".pem", stem + ".key")
        self.sock, self.lock = sock, threading.Lock()
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=True)
        while True:
            try:
                with self.lock:
                    self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                d = sock.recv(65536)
                if not d:
                    raise EOFError
                self.inc.write(d)
        self.flush()
    def flush(self):
        with self.lock:
            d = self.out.read()
        if d:
            self.sock.sendall(d)
    def recv(self):
        while True:
            try:
                with self.lock:
                    return self.obj.read(65536)
            except ssl.SSLWantReadError:
                self.flush()
                d = self.sock.recv(65536)
                if not d:
                    return b""
                with self.lock:
                    self.inc.write(d)
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
    def send(self, data):
        self.sock.sendall(self.encode(data))
    def encode(self, data):
        with self.lock:
            self.obj.write(data)
            return self.out.read()

def pipe(recv, send, closing):
    try:
        while True:
            d = recv()
            if not d:
                break
            send(d)
    except Exception:
        pass
    for s in closing:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except Exception:
            pass

def relay(conn, sock, first):
    up = socket.create_connection(("127.0.0.1", upstream))
    up.sendall(first)
    threading.Thread(target=pipe, args=(lambda: up.recv(65536), conn.send, (sock, up)),
                     daemon=True).start()
    pipe(conn.recv, up.sendall, (sock, up))

def handle(sock):
    try:
        conn = Tls(sock) if use_tls else Plain(sock)
        first = b""
        while b"\r\n\r\n" not in first:
            d = conn.recv()
            if not d:
                return
            first += d
        head = first.split(b"\r\n\r\n")[0].lower()
        mode = setting("mode", sys.argv[4]) if b"tfshim" in head else "pass"
        if mode == "drip":
            answer = b"HTTP/1.1 200 OK\r\nX-Drip: " + b"a" * 16000 + b"\r\n\r\n"
            for b in conn.encode(answer):
                sock.sendall(bytes([b]))
                time.sleep(0.25)
            return
        if mode.startswith("slow:"):
            time.sleep(float(mode[5:]))
        relay(conn, sock, first)
    except Exception:
        pass
    finally:
        try:
            sock.close()
        except Exception:
            pass

srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(64)
def serve():
    while True:
        c, _ = srv.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()
threading.Thread(target=serve, daemon=True).start()
print(srv.getsockname()[1], flush=True)
sys.stdin.read()
"#;

pub struct DripFront {
    pub port: u16,
    pub dir: PathBuf,
    _child: Child,
}

impl DripFront {
    /// A front on 127.0.0.1 for the plain-HTTP server on `upstream`, over TLS or not, whose mode
    /// for tfshim's requests is `mode` until [`DripFront::set_mode`]; its files go to `dir`.
    pub fn start(upstream: u16, dir: &Path, tls: bool, mode: &str) -> DripFront {
        let python = std::env::var("TFSHIM_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new(&python)
            .args(["-c", SCRIPT, &upstream.to_string()])
            .arg(dir)
            .args([if tls { "tls" } else { "plain" }, mode])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("could not start the drip front (python3)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!(
                "the drip front did not start: it needs Python's `cryptography` package, which \
                 `pip install 'moto[server]'` brings"
            )
        });
        DripFront {
            port,
            dir: dir.to_owned(),
            _child: child,
        }
    }

    /// The mode for tfshim's next connections.
    pub fn set_mode(&self, mode: &str) {
        std::fs::write(self.dir.join("mode"), mode).unwrap();
    }

    /// The certificate served from the next connection on (`server`, `pinned`, …).
    pub fn serve(&self, cert: &str) {
        std::fs::write(self.dir.join("serve"), cert).unwrap();
    }

    /// A file of the front's (`ca.pem`, `pins.pem`, `pinned.pem`, …).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}
