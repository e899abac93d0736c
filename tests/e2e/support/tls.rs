//! A TLS front for the STS proxy, signed by a CA of the test's own: terraform and tfshim reach STS
//! over HTTPS only if they trust that CA (`custom_ca_bundle`, `AWS_CA_BUNDLE`). Python's `ssl` serves
//! it and the `cryptography` package (a dependency of moto, so already installed) makes the CA and the
//! certificate for `localhost`/127.0.0.1; the process ends when this handle is dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const SCRIPT: &str = r#"
import datetime, ipaddress, os, socket, ssl, sys, threading
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

upstream, out = int(sys.argv[1]), sys.argv[2]
now = datetime.datetime.now(datetime.timezone.utc)
def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
def build(subject, issuer, key, signer):
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)))
ca_key = ec.generate_private_key(ec.SECP256R1())
ca = (build(name("tfshim test CA"), name("tfshim test CA"), ca_key, ca_key)
      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
      .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                   content_commitment=False, key_encipherment=False,
                                   data_encipherment=False, key_agreement=False,
                                   encipher_only=False, decipher_only=False), critical=True)
      .sign(ca_key, hashes.SHA256()))
key = ec.generate_private_key(ec.SECP256R1())
cert = (build(name("localhost"), ca.subject, key, ca_key)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
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
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(64)

def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except Exception:
        pass
    for s in (a, b):
        try:
            s.close()
        except Exception:
            pass

def handle(c):
    try:
        t = ctx.wrap_socket(c, server_side=True)
        u = socket.create_connection(("127.0.0.1", upstream))
    except Exception:
        c.close()
        return
    threading.Thread(target=pipe, args=(u, t), daemon=True).start()
    pipe(t, u)

def serve():
    while True:
        c, _ = srv.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()

threading.Thread(target=serve, daemon=True).start()
print(srv.getsockname()[1], flush=True)
sys.stdin.read()
"#;

pub struct TlsFront {
    pub port: u16,
    /// The CA that signed the front's certificate (PEM).
    pub ca: PathBuf,
    _child: Child,
}

impl TlsFront {
    /// An HTTPS front on 127.0.0.1 for the plain-HTTP server on `upstream`; its files go to `dir`.
    pub fn start(upstream: u16, dir: &Path) -> TlsFront {
        let python = std::env::var("TFSHIM_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new(&python)
            .args(["-c", SCRIPT, &upstream.to_string()])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("could not start the TLS front (python3)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!(
                "the TLS front did not start: it needs Python's `cryptography` package, which \
                 `pip install 'moto[server]'` brings"
            )
        });
        TlsFront {
            port,
            ca: dir.join("ca.pem"),
            _child: child,
        }
    }
}
