//! A server certificate pinned in `client_ca_certificate_pem`: the http backend's trust list may
//! hold the server's own (often self-signed, `CA:TRUE`) certificate instead of the CA that issued
//! it. Go accepts that (crypto/x509 `Certificate.Verify`, Go 1.23 as terraform 1.11 is built with:
//! when the leaf itself is in `opts.Roots` the chain is just `[leaf]`, no chain is built and no CA
//! bit is looked at); webpki refuses a CA certificate as an end entity (`CaUsedAsEndEntity`), so
//! without this such roots got no verdict and were never healed (#20).
//!
//! Exactly Go's checks of that one-certificate chain, nothing wider: the leaf must be byte for byte
//! one of the pinned certificates (Go's `CertPool.contains` compares the raw DER); then
//! `isValid(leafCertificate)` — no critical extension Go does not handle, the time inside
//! `NotBefore..=NotAfter` — `VerifyHostname` (SAN only, IP SANs for an IP; webpki's own matcher) and
//! `checkChainForKeyUsage` with `ServerAuth` (no EKU, `anyExtendedKeyUsage` or `serverAuth`). A leaf
//! that is not pinned is left to webpki with the pinned roots, as before. The handshake's signatures
//! are always verified with the leaf's key.
//!
//! The few DER fields read here are walked by hand: nothing in the tree parses X.509 beyond what
//! webpki keeps private.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Verifies as Go does with `RootCAs` = the pinned certificates.
#[derive(Debug)]
pub struct Pinned {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl Pinned {
    /// `Err` when no pinned certificate can be a root (rustls refuses it), as before.
    pub fn new(
        pinned: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Pinned, String> {
        let mut roots = RootCertStore::empty();
        for cert in &pinned {
            roots
                .add(cert.clone())
                .map_err(|e| format!("client_ca_certificate_pem: {e}"))?;
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("client_ca_certificate_pem: {e}"))?;
        Ok(Pinned { webpki, pinned })
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return self.webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            );
        }
        leaf_only(end_entity, server_name, now)?;
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Go's checks of a chain that is the pinned leaf alone.
fn leaf_only(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let bad = || rustls::Error::InvalidCertificate(CertificateError::BadEncoding);
    let fields = Fields::of(cert.as_ref()).ok_or_else(bad)?;
    if fields
        .extensions
        .iter()
        .any(|e| e.critical && !go_handles(e.oid))
    {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::UnhandledCriticalExtension,
        ));
    }
    let now = now.as_secs();
    if now < fields.not_before {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet,
        ));
    }
    if now > fields.not_after {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    let parsed = ParsedCertificate::try_from(cert)?;
    rustls::client::verify_server_name(&parsed, server_name)?;
    if let Some(eku) = fields.extensions.iter().find(|e| e.oid == OID_EKU) {
        if !eku_allows_server_auth(eku.value).ok_or_else(bad)? {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose,
            ));
        }
    }
    Ok(())
}

/// `id-ce-extKeyUsage` (2.5.29.37), DER content bytes.
const OID_EKU: &[u8] = &[0x55, 0x1d, 0x25];
const OID_ANY_EKU: &[u8] = &[0x55, 0x1d, 0x25, 0x00];
/// `id-kp-serverAuth` (1.3.6.1.5.5.7.3.1).
const OID_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
/// `id-pe-authorityInfoAccess` (1.3.6.1.5.5.7.1.1).
const OID_AIA: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01];

/// The extensions Go 1.23's parser handles (`processExtensions`): a critical one outside this list
/// is an `UnhandledCriticalExtension`.
fn go_handles(oid: &[u8]) -> bool {
    match oid {
        [0x55, 0x1d, n] => matches!(n, 14 | 15 | 17 | 19 | 30 | 31 | 32 | 33 | 35 | 36 | 37 | 54),
        _ => oid == OID_AIA,
    }
}

/// Go's `checkChainForKeyUsage` for a one-certificate chain and `ServerAuth`: an extension listing
/// no usage, `anyExtendedKeyUsage` or `serverAuth` allows it. `None`: not DER.
fn eku_allows_server_auth(value: &[u8]) -> Option<bool> {
    let (tag, mut list, rest) = tlv(value)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let mut any = false;
    let mut allowed = false;
    while !list.is_empty() {
        let (tag, oid, rest) = tlv(list)?;
        if tag != 0x06 {
            return None;
        }
        any = true;
        allowed |= oid == OID_ANY_EKU || oid == OID_SERVER_AUTH;
        list = rest;
    }
    Some(allowed || !any)
}

struct Extension<'a> {
    oid: &'a [u8],
    critical: bool,
    value: &'a [u8],
}

/// The fields of a certificate Go's leaf checks read.
struct Fields<'a> {
    /// Seconds since the epoch.
    not_before: u64,
    not_after: u64,
    extensions: Vec<Extension<'a>>,
}

impl<'a> Fields<'a> {
    /// `Certificate ::= SEQUENCE { tbsCertificate, … }`, RFC 5280 §4.1.
    fn of(der: &'a [u8]) -> Option<Fields<'a>> {
        let (0x30, cert, _) = tlv(der)? else {
            return None;
        };
        let (0x30, mut tbs, _) = tlv(cert)? else {
            return None;
        };
        let mut next = |want: Option<u8>| -> Option<(u8, &'a [u8])> {
            let (tag, content, rest) = tlv(tbs)?;
            if want.is_some_and(|w| w != tag) {
                return None;
            }
            tbs = rest;
            Some((tag, content))
        };
        // version [0] EXPLICIT (optional), serialNumber, signature, issuer.
        let (mut tag, _) = next(None)?;
        if tag == 0xa0 {
            (tag, _) = next(None)?;
        }
        if tag != 0x02 {
            return None;
        }
        next(Some(0x30))?;
        next(Some(0x30))?;
        let (_, validity) = next(Some(0x30))?;
        let (t1, before, rest) = tlv(validity)?;
        let (t2, after, _) = tlv(rest)?;
        let not_before = time(t1, before)?;
        let not_after = time(t2, after)?;
        // subject, subjectPublicKeyInfo, then the optional unique IDs and extensions [3].
        next(Some(0x30))?;
        next(Some(0x30))?;
        let mut extensions = Vec::new();
        while let Some((tag, content)) = next(None) {
            if tag != 0xa3 {
                continue;
            }
            let (0x30, mut list, _) = tlv(content)? else {
                return None;
            };
            while !list.is_empty() {
                let (0x30, mut ext, rest) = tlv(list)? else {
                    return None;
                };
                list = rest;
                let (0x06, oid, r) = tlv(ext)? else {
                    return None;
                };
                ext = r;
                let mut critical = false;
                let (mut tag, mut value, r) = tlv(ext)?;
                if tag == 0x01 {
                    critical = value == [0xff];
                    (tag, value, _) = tlv(r)?;
                }
                if tag != 0x04 {
                    return None;
                }
                extensions.push(Extension {
                    oid,
                    critical,
                    value,
                });
            }
        }
        Some(Fields {
            not_before,
            not_after,
            extensions,
        })
    }
}

/// One DER element: its tag, its content and what follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, r) = rest.split_at(n);
        rest = r;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// `UTCTime` (`YYMMDDHHMMSSZ`, years 1950–2049) or `GeneralizedTime` (`YYYYMMDDHHMMSSZ`) as seconds
/// since the epoch, as RFC 5280 requires them written.
fn time(tag: u8, text: &[u8]) -> Option<u64> {
    let digits = |s: &[u8]| -> Option<u64> {
        s.iter().try_fold(0u64, |acc, b| {
            b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
        })
    };
    let (year, rest) = match (tag, text.len()) {
        (0x17, 13) => {
            let yy = digits(&text[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
        }
        (0x18, 15) => (digits(&text[..4])?, &text[4..]),
        _ => return None,
    };
    if rest[10] != b'Z' {
        return None;
    }
    let field = |i: usize| digits(&rest[i..i + 2]);
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 59 || year < 1970 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`), for years from 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(time(0x18, b"20000301000000Z"), Some(951_868_800));
        assert_eq!(time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(
            time(0x17, b"500101000000Z"),
            None,
            "1950 is before the epoch"
        );
        assert_eq!(time(0x18, b"20240229120000Z"), Some(1_709_208_000));
        assert_eq!(time(0x17, b"240229120000+0100"), None);
        assert_eq!(time(0x18, b"2024022912000Z"), None);
    }

    #[test]
    fn der_lengths() {
        assert_eq!(
            tlv(&[0x04, 0x01, 0xaa, 0xbb]),
            Some((4, &[0xaa][..], &[0xbb][..]))
        );
        let long = [&[0x04, 0x81, 0x80][..], &[7u8; 128]].concat();
        assert_eq!(tlv(&long).map(|(_, c, _)| c.len()), Some(128));
        assert_eq!(tlv(&[0x04, 0x02, 0xaa]), None);
        assert_eq!(tlv(&[0x04, 0x80]), None);
    }

    #[test]
    fn extended_key_usage_as_go_reads_it() {
        let seq = |oids: &[&[u8]]| {
            let body: Vec<u8> = oids
                .iter()
                .flat_map(|o| [&[0x06, o.len() as u8][..], o].concat())
                .collect();
            [&[0x30, body.len() as u8][..], &body].concat()
        };
        let client_auth: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
        assert_eq!(eku_allows_server_auth(&seq(&[OID_SERVER_AUTH])), Some(true));
        assert_eq!(
            eku_allows_server_auth(&seq(&[client_auth, OID_ANY_EKU])),
            Some(true)
        );
        assert_eq!(eku_allows_server_auth(&seq(&[client_auth])), Some(false));
        assert_eq!(eku_allows_server_auth(&seq(&[])), Some(true));
        assert_eq!(eku_allows_server_auth(&[0x31, 0x00]), None);
    }

    #[test]
    fn critical_extensions_go_handles() {
        assert!(go_handles(&[0x55, 0x1d, 19]));
        assert!(go_handles(OID_EKU));
        assert!(go_handles(OID_AIA));
        assert!(!go_handles(&[0x55, 0x1d, 99]));
        assert!(!go_handles(&[0x2b, 0x06, 0x01, 0x04, 0x01]));
    }
}
