//! One request, one status code: TCP (through an HTTP proxy if one applies, with `CONNECT` for
//! https), TLS with terraform's http-backend options, a request with basic auth, and the response's
//! status line. The body is never read (except where a [`Call`] asks for a bounded one: an OAuth
//! token answer): the connection is closed after the head, so a large state is not downloaded even
//! when the server ignores `HEAD`.
//!
//! The whole request — resolving, connecting, the proxy's `CONNECT`, the TLS handshake, writing,
//! reading the head — runs on tokio (hyper's HTTP/1 client, tokio-rustls) under one
//! `tokio::time::timeout_at` of the caller's deadline, so a server that drips its answer a byte at
//! a time cannot hold terraform longer than that deadline (#20): a blocking socket's read timeout
//! only bounds each read, and rustls keeps reading inside one `read` until a record is whole.
//!
//! Every error message names what failed, never a credential or a header value.
//!
//! Over 500 lines only because its unit tests (a quarter of the file) are kept beside the code.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use hyper::header::{
    HeaderValue, ACCEPT, AUTHORIZATION, CONNECTION, HOST, PROXY_AUTHORIZATION, USER_AGENT,
};
use hyper::rt::{Read as HyperRead, Write as HyperWrite};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use url::{Host, Url};

use crate::backends::saved::Secret;
use crate::net::pinned::Pinned;

/// The TLS options of terraform's http backend (`configureTLS` in its `backend.go`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// `skip_cert_verification`: any server certificate is accepted.
    pub skip_verify: bool,
    /// `client_ca_certificate_pem`: trust these CAs only (else the system's, as Go does).
    pub ca_pem: Option<String>,
    /// `client_certificate_pem` and `client_private_key_pem`: mutual TLS.
    pub client_cert_pem: Option<String>,
    pub client_key_pem: Option<Secret>,
}

/// One request to make.
pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a Url,
    /// Basic auth, sent only with a username (as terraform's client does).
    pub basic_auth: Option<(&'a str, &'a Secret)>,
    pub tls: &'a Tls,
    /// An `http://` proxy (chosen by Go's rules in the `aws::proxy` module), or a direct connection.
    pub proxy: Option<&'a Url>,
    /// When the answer must be in, for the whole request: resolve, connect, tunnel, TLS, answer.
    /// One check's requests share one deadline (`credentials::http`).
    pub deadline: Instant,
    pub user_agent: &'a str,
}

/// What a request carries beyond [`Request`] and what is read of its answer: a bearer token, a
/// form body, more headers, and up to `read_body` bytes of the answer's body (the gcs backend's
/// check and its OAuth token exchanges, `credentials::gcs`). The default is a bare [`status`].
#[derive(Default)]
pub struct Call<'a> {
    /// `Authorization: Bearer …`.
    pub bearer: Option<&'a Secret>,
    /// An `application/x-www-form-urlencoded` body.
    pub form: Option<&'a Secret>,
    pub headers: &'a [(&'static str, &'a str)],
    /// Read the body, at most this many bytes (more is an error: no verdict).
    pub read_body: Option<usize>,
}

/// The status code of the answer, or why there is none (`timeout`, `connection refused`, …).
pub fn status(req: &Request) -> Result<u16, String> {
    call(req, &Call::default()).map(|(code, _)| code)
}

/// The status code and, if asked for, the body of the answer, under the request's deadline.
pub fn call(req: &Request, call: &Call) -> Result<(u16, Vec<u8>), String> {
    if req.deadline <= Instant::now() {
        return Err("timeout".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the async runtime: {e}"))?;
    let deadline = tokio::time::Instant::from_std(req.deadline);
    let answer = runtime.block_on(async {
        tokio::time::timeout_at(deadline, exchange(req, call))
            .await
            .unwrap_or_else(|_| Err("timeout".into()))
    });
    // A resolver still blocked in its thread, or a connection task, must not hold tfshim: dropping
    // the runtime would wait for them.
    runtime.shutdown_background();
    answer
}

/// The request, from the first packet to the answer's head. Unbounded: [`status`] bounds it.
async fn exchange(req: &Request<'_>, call: &Call<'_>) -> Result<(u16, Vec<u8>), String> {
    let https = match req.url.scheme() {
        "https" => true,
        "http" => false,
        other => return Err(format!("unsupported scheme {other}")),
    };
    let target = host_port(req.url)?;
    let tcp = match req.proxy {
        Some(proxy) if proxy.scheme() != "http" => {
            return Err(format!(
                "a {} proxy, which tfshim cannot use",
                proxy.scheme()
            ))
        }
        Some(proxy) => connect(&host_port(proxy)?).await?,
        None => connect(&target).await?,
    };
    let proxy_auth = req.proxy.and_then(proxy_authorization);
    if !https {
        let via_proxy = req.proxy.is_some();
        return send(
            TokioIo::new(tcp),
            req,
            call,
            &target,
            proxy_auth.as_deref(),
            via_proxy,
        )
        .await;
    }
    let config = tls_config(req.tls)?;
    let name = server_name(req.url)?;
    let connector = tokio_rustls::TlsConnector::from(config);
    if req.proxy.is_some() {
        let tunnel = TokioIo::new(tunnel(tcp, &target, proxy_auth.as_deref()).await?);
        let tls = connector
            .connect(name, tunnel)
            .await
            .map_err(|e| tls_or_io(&e))?;
        send(TokioIo::new(tls), req, call, &target, None, false).await
    } else {
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| tls_or_io(&e))?;
        send(TokioIo::new(tls), req, call, &target, None, false).await
    }
}

/// `host:port` as written in a `Host` header or a `CONNECT` line (IPv6 in brackets).
struct HostPort {
    host: String,
    port: u16,
    default_port: bool,
}

impl HostPort {
    fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
    fn host_header(&self) -> String {
        if self.default_port {
            self.host.clone()
        } else {
            self.authority()
        }
    }
}

fn host_port(url: &Url) -> Result<HostPort, String> {
    let host = match url.host() {
        Some(Host::Domain(d)) => d.to_owned(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => format!("[{ip}]"),
        None => return Err("the address has no host".into()),
    };
    let port = url
        .port_or_known_default()
        .ok_or("the address has no port")?;
    Ok(HostPort {
        host,
        port,
        default_port: url.port().is_none(),
    })
}

/// Resolves and connects to the first address that answers.
async fn connect(to: &HostPort) -> Result<TcpStream, String> {
    let name = to.host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<_> = tokio::net::lookup_host((name, to.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", to.host))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{} has no address", to.host));
    }
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = io_reason(&e),
        }
    }
    Err(last)
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timeout".into(),
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::UnexpectedEof => "connection closed".into(),
        _ => format!("network error ({e})"),
    }
}

/// `Proxy-Authorization` from a proxy URL's user info, as Go sends it.
fn proxy_authorization(proxy: &Url) -> Option<String> {
    if proxy.username().is_empty() {
        return None;
    }
    let user = percent_decode(proxy.username());
    let password = percent_decode(proxy.password().unwrap_or(""));
    Some(format!(
        "Basic {}",
        base64(format!("{user}:{password}").as_bytes())
    ))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A header value from text tfshim built or the user configured; a value HTTP cannot carry (a
/// control character) is no request.
fn header(value: &str, what: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(value).map_err(|_| format!("the {what} cannot be sent in an HTTP header"))
}

/// A `CONNECT` tunnel through the proxy to `target`.
async fn tunnel(
    tcp: TcpStream,
    target: &HostPort,
    auth: Option<&str>,
) -> Result<hyper::upgrade::Upgraded, String> {
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake::<_, String>(TokioIo::new(tcp))
        .await
        .map_err(|e| hyper_reason(&e))?;
    tokio::spawn(conn.with_upgrades());
    let authority = target.authority();
    let mut request = hyper::Request::builder()
        .method(hyper::Method::CONNECT)
        .uri(&authority)
        .header(HOST, header(&authority, "address")?);
    if let Some(auth) = auth {
        request = request.header(PROXY_AUTHORIZATION, header(auth, "proxy's user info")?);
    }
    let request = request
        .body(String::new())
        .map_err(|_| "the address cannot be sent in an HTTP request".to_owned())?;
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| hyper_reason(&e))?;
    if !answer.status().is_success() {
        return Err(format!(
            "the proxy refused the tunnel (HTTP {})",
            answer.status().as_u16()
        ));
    }
    hyper::upgrade::on(answer)
        .await
        .map_err(|e| hyper_reason(&e))
}

/// Writes the request and reads the head of the answer (its body is never read).
async fn send<T>(
    io: T,
    req: &Request<'_>,
    call: &Call<'_>,
    target: &HostPort,
    proxy_auth: Option<&str>,
    absolute_form: bool,
) -> Result<(u16, Vec<u8>), String>
where
    T: HyperRead + HyperWrite + Unpin + Send + 'static,
{
    // Through a plain-http proxy the request line carries the whole URL (without user info).
    let mut path = req.url.path().to_owned();
    if let Some(q) = req.url.query() {
        path.push('?');
        path.push_str(q);
    }
    let uri = if absolute_form {
        format!("{}://{}{path}", req.url.scheme(), target.host_header())
    } else {
        path
    };
    let method = hyper::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| format!("{} is not an HTTP method", req.method))?;
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(&uri)
        .header(HOST, header(&target.host_header(), "address")?)
        .header(USER_AGENT, header(req.user_agent, "user agent")?)
        .header(ACCEPT, HeaderValue::from_static("*/*"))
        .header(CONNECTION, HeaderValue::from_static("close"));
    if let Some((user, password)) = req.basic_auth {
        let pair = format!("{user}:{}", password.expose());
        let value = header(&format!("Basic {}", base64(pair.as_bytes())), "username")?;
        request = request.header(AUTHORIZATION, value);
    }
    if let Some(auth) = proxy_auth {
        request = request.header(PROXY_AUTHORIZATION, header(auth, "proxy's user info")?);
    }
    if let Some(token) = call.bearer {
        let value = header(&format!("Bearer {}", token.expose()), "token")?;
        request = request.header(AUTHORIZATION, value);
    }
    for (name, value) in call.headers {
        request = request.header(*name, header(value, name)?);
    }
    let body = match call.form {
        Some(form) => {
            request = request.header(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            form.expose().to_owned()
        }
        None => String::new(),
    };
    let request = request
        .body(body)
        .map_err(|_| "the address cannot be sent in an HTTP request".to_owned())?;
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake::<_, String>(io)
        .await
        .map_err(|e| hyper_reason(&e))?;
    // The connection's task ends with the runtime ([`status`]), before any body is read.
    tokio::spawn(conn);
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| hyper_reason(&e))?;
    let code = answer.status().as_u16();
    let Some(limit) = call.read_body else {
        return Ok((code, Vec::new()));
    };
    let mut body = answer.into_body();
    let mut out = Vec::new();
    while let Some(frame) =
        std::future::poll_fn(|cx| hyper::body::Body::poll_frame(std::pin::Pin::new(&mut body), cx))
            .await
    {
        if let Ok(data) = frame.map_err(|e| hyper_reason(&e))?.into_data() {
            out.extend_from_slice(&data);
            if out.len() > limit {
                return Err("the answer is too long".into());
            }
        }
    }
    Ok((code, out))
}

/// Why hyper got no answer, in the words of the rest of tfshim (a TLS or socket error inside it
/// is named as such).
fn hyper_reason(e: &hyper::Error) -> String {
    if e.is_parse() || e.is_parse_status() {
        return "the answer is not HTTP".into();
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<io::Error>() {
            return tls_or_io(io);
        }
        source = inner.source();
    }
    if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        return "connection closed".into();
    }
    format!("HTTP: {e}")
}

fn tls_or_io(e: &io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => format!("TLS: {tls}"),
        None => io_reason(e),
    }
}

fn server_name(url: &Url) -> Result<ServerName<'static>, String> {
    let name = match url.host() {
        Some(Host::Domain(d)) => d.to_owned(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        None => return Err("the address has no host".into()),
    };
    ServerName::try_from(name).map_err(|_| "the address's host is not a valid TLS name".into())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS configuration terraform's http backend would use.
fn tls_config(tls: &Tls) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = if tls.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
    } else {
        match &tls.ca_pem {
            Some(pem) => {
                let pinned = CertificateDer::pem_slice_iter(pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| "client_ca_certificate_pem is not PEM")?;
                if pinned.is_empty() {
                    return Err("client_ca_certificate_pem holds no certificate".into());
                }
                // Go also accepts a server whose own certificate is in the list (`net::pinned`).
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Pinned::new(pinned, provider)?))
            }
            None => {
                // Go reads the system's roots (honouring SSL_CERT_FILE/SSL_CERT_DIR); so does this.
                let mut roots = RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
                builder.with_root_certificates(roots)
            }
        }
    };
    let config = match (&tls.client_cert_pem, &tls.client_key_pem) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| "client_certificate_pem is not PEM")?;
            let key = PrivateKeyDer::from_pem_slice(key.expose().as_bytes())
                .map_err(|_| "client_private_key_pem is not a PEM private key")?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the client certificate cannot be used: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        // terraform refuses a half pair; so there is nothing to reproduce.
        _ => return Err("only one of client_certificate_pem and client_private_key_pem".into()),
    };
    Ok(Arc::new(config))
}

/// `skip_cert_verification = true`: like Go's `InsecureSkipVerify`, any certificate and host name
/// are accepted, while the handshake's signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Standard base64 with padding (RFC 4648), for the `Authorization` header.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Duration;

    #[test]
    fn base64_matches_rfc4648() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%40b"), "a@b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    /// A one-shot server: answers `answer` to the first connection and hands back the request head.
    fn serve(answer: &'static str) -> (Url, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!(
            "http://127.0.0.1:{}/state/x?ref=main",
            listener.local_addr().unwrap().port()
        ))
        .unwrap();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 512];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            s.write_all(answer.as_bytes()).unwrap();
            String::from_utf8(buf).unwrap()
        });
        (url, handle)
    }

    fn request<'a>(url: &'a Url, auth: Option<(&'a str, &'a Secret)>, tls: &'a Tls) -> Request<'a> {
        Request {
            method: "HEAD",
            url,
            basic_auth: auth,
            tls,
            proxy: None,
            deadline: Instant::now() + Duration::from_secs(5),
            user_agent: "tfshim",
        }
    }

    #[test]
    fn sends_basic_auth_and_reads_the_status() {
        let (url, server) = serve("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
        let password = Secret::new("glpat-secret");
        let tls = Tls::default();
        let code = status(&request(&url, Some(("alice", &password)), &tls)).unwrap();
        assert_eq!(code, 401);
        let head = server.join().unwrap();
        assert!(
            head.starts_with("HEAD /state/x?ref=main HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("Host: {}\r\n", url.authority())),
            "{head}"
        );
        assert!(
            head.contains(&format!(
                "Authorization: Basic {}\r\n",
                base64(b"alice:glpat-secret")
            )),
            "{head}"
        );
    }

    #[test]
    fn a_call_sends_a_bearer_a_form_and_headers_and_reads_a_bounded_body() {
        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let (url, server) = serve(answer);
        let (token, form) = (Secret::new("ya29.tok"), Secret::new("grant_type=x"));
        let tls = Tls::default();
        let mut req = request(&url, None, &tls);
        req.method = "POST";
        let call_of = |limit| Call {
            bearer: Some(&token),
            form: Some(&form),
            headers: &[("Metadata-Flavor", "Google")],
            read_body: Some(limit),
        };
        assert_eq!(call(&req, &call_of(64)).unwrap(), (200, b"hello".to_vec()));
        let head = server.join().unwrap();
        for line in [
            "POST /state/x?ref=main HTTP/1.1\r\n",
            "Authorization: Bearer ya29.tok\r\n",
            "Content-Type: application/x-www-form-urlencoded\r\n",
            "Metadata-Flavor: Google\r\n",
            "Content-Length: 12\r\n",
        ] {
            assert!(head.contains(line), "{line} not in {head}");
        }
        // An answer longer than asked for is no answer.
        let (url, server) = serve(answer);
        let req = Request { url: &url, ..req };
        assert_eq!(
            call(&req, &call_of(3)).unwrap_err(),
            "the answer is too long"
        );
        server.join().unwrap();
    }

    #[test]
    fn no_answer_is_no_status() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let tls = Tls::default();
        let err = status(&request(&url, None, &tls)).unwrap_err();
        assert_eq!(err, "connection refused");
        let (url, server) = serve("garbage\r\n\r\n");
        assert_eq!(
            status(&request(&url, None, &tls)).unwrap_err(),
            "the answer is not HTTP"
        );
        server.join().unwrap();
    }

    #[test]
    fn through_a_proxy() {
        // Plain http: the whole URL on the request line, the proxy's own credentials beside ours.
        let (proxy_url, proxy) = serve("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        let proxy_url = Url::parse(&format!(
            "http://me:p%40ss@{}",
            proxy_url.authority().rsplit('@').next().unwrap()
        ))
        .unwrap();
        let target = Url::parse("http://gitlab.example:8080/api/state?x=1").unwrap();
        let tls = Tls::default();
        let mut req = request(&target, None, &tls);
        req.proxy = Some(&proxy_url);
        assert_eq!(status(&req).unwrap(), 404);
        let head = proxy.join().unwrap();
        assert!(
            head.starts_with("HEAD http://gitlab.example:8080/api/state?x=1 HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!(
                "Proxy-Authorization: Basic {}\r\n",
                base64(b"me:p@ss")
            )),
            "{head}"
        );
        // https: a CONNECT tunnel first; a refusal is no status, and says why.
        let (proxy_url, proxy) = serve("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n");
        let target = Url::parse("https://gitlab.example/api/state").unwrap();
        let mut req = request(&target, None, &tls);
        req.proxy = Some(&proxy_url);
        assert_eq!(
            status(&req).unwrap_err(),
            "the proxy refused the tunnel (HTTP 407)"
        );
        let head = proxy.join().unwrap();
        assert!(
            head.starts_with("CONNECT gitlab.example:443 HTTP/1.1\r\nHost: gitlab.example:443\r\n"),
            "{head}"
        );
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let tls = Tls::default();
        let mut req = request(&url, None, &tls);
        req.deadline = Instant::now() + Duration::from_millis(300);
        let started = Instant::now();
        assert_eq!(status(&req).unwrap_err(), "timeout");
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(listener);
    }
}
