//! Which proxy, if any, terraform's HTTP client would send a request through. terraform is a Go
//! program: its http backend takes `net/http.ProxyFromEnvironment` and its S3 backend
//! aws-sdk-go-base's transport, both golang.org/x/net/http/httpproxy (`config.proxyForURL`,
//! `useProxy`, `canonicalAddr`, `init`). tfshim must reach the same server the same way, or its
//! verdict is about some other path — a proxy's own 403 once read as a rejected token, the token
//! sent to that proxy (issue #20, item 6). Those rules, here, pure and table-tested:
//!
//! - `https://` URLs use `HTTPS_PROXY`, `http://` URLs `HTTP_PROXY` (upper case first, then lower
//!   case; empty means unset); a proxy without a scheme (or host) is `http://`. With
//!   `REQUEST_METHOD` set (CGI), Go refuses `HTTP_PROXY` for `http://` URLs: the request fails.
//! - Exactly the host `localhost`, and every loopback address (`127.0.0.0/8`, `::1`, and the
//!   IPv4-mapped `::ffff:127.x.y.z`, which `net.IP.IsLoopback` sees through `To4`), never use a
//!   proxy. `LOCALHOST` or `localhost.` are names like any other to Go.
//! - The host is compared in punycode (`idna.Lookup.ToASCII`, for non-ASCII names only), lower
//!   case, with the scheme's port (80, 443) when the URL has none.
//! - `NO_PROXY`: comma-separated, each entry trimmed and lower-cased; `*` exempts everything; a CIDR
//!   exempts the addresses in it (IPv4-mapped addresses count as IPv4); an IP (`[v6]:port` too)
//!   exempts that address; a name exempts itself and its subdomains (`.name` and `*.name` only
//!   the subdomains), in punycode; any entry but a CIDR may carry a `:port`. Names never match an
//!   address (x/net since CVE-2025-22870).
//! - The S3 backend's `http_proxy`/`https_proxy`/`no_proxy` (terraform 1.6+, aws-sdk-go-base v2
//!   `internal/config`, `HTTPProxyModeLegacy`): a set `http_proxy` replaces `HTTP_PROXY` — an
//!   empty one means no proxy — and, when no `HTTPS_PROXY` is set, serves https too; a set
//!   `https_proxy` replaces `HTTPS_PROXY` (empty: none); a non-empty `no_proxy` replaces `NO_PROXY`.

use std::net::IpAddr;

/// The settings, after the backend's attributes were laid over the environment's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    pub http: Option<String>,
    pub https: Option<String>,
    pub no_proxy: Option<String>,
    /// `REQUEST_METHOD` is set: Go refuses `HTTP_PROXY` for `http://` URLs.
    pub cgi: bool,
}

impl ProxySettings {
    /// The environment's settings with the backend's attributes on top: each `None` when null,
    /// `Some("")` when set to the empty string (which, for the two proxies, means "no proxy").
    pub fn resolve(
        env: impl Fn(&str) -> Option<String>,
        http: Option<&str>,
        https: Option<&str>,
        no_proxy: Option<&str>,
    ) -> ProxySettings {
        // httpproxy.getEnvAny: the first variable that is set and not empty.
        let any = |upper: &str, lower: &str| {
            env(upper)
                .filter(|v| !v.is_empty())
                .or_else(|| env(lower).filter(|v| !v.is_empty()))
        };
        let mut s = ProxySettings {
            http: any("HTTP_PROXY", "http_proxy"),
            https: any("HTTPS_PROXY", "https_proxy"),
            no_proxy: any("NO_PROXY", "no_proxy"),
            cgi: env("REQUEST_METHOD").is_some_and(|v| !v.is_empty()),
        };
        if let Some(http) = http {
            s.http = Some(http.to_owned());
            if s.https.is_none() {
                s.https = Some(http.to_owned());
            }
        }
        if let Some(https) = https {
            s.https = Some(https.to_owned());
        }
        if let Some(no_proxy) = no_proxy.filter(|v| !v.is_empty()) {
            s.no_proxy = Some(no_proxy.to_owned());
        }
        s.http = s.http.filter(|v| !v.is_empty());
        s.https = s.https.filter(|v| !v.is_empty());
        s
    }

    /// The proxy URL for a request to `url` (`scheme://[user@]host[:port]/…`, as written), `None`
    /// to go direct, `Err` when Go would fail the request (CGI).
    pub fn proxy_for(&self, url: &str) -> Result<Option<String>, String> {
        let Some((scheme, authority)) = split_url(url) else {
            return Ok(None);
        };
        let proxy = match scheme.as_str() {
            "https" => self.https.as_ref(),
            "http" => match &self.http {
                Some(_) if self.cgi => {
                    return Err("REQUEST_METHOD is set, and Go refuses HTTP_PROXY in a CGI \
                                environment (golang.org/s/cgihttpproxy)"
                        .into())
                }
                p => p.as_ref(),
            },
            _ => None,
        };
        let Some(proxy) = proxy else {
            return Ok(None);
        };
        if !self.use_proxy(&canonical_addr(&scheme, &authority)) {
            return Ok(None);
        }
        Ok(Some(parse_proxy(proxy)))
    }

    /// httpproxy `useProxy`: `addr` is `canonicalAddr`'s `host:port`.
    fn use_proxy(&self, addr: &str) -> bool {
        if addr.is_empty() {
            return true;
        }
        let Ok((host, port)) = go_split_host_port(addr) else {
            return false;
        };
        if host == "localhost" {
            return false;
        }
        let ip = parse_addr(&host);
        if ip.is_some_and(is_loopback) {
            return false;
        }
        let host = host.trim().to_lowercase();
        let Some(list) = &self.no_proxy else {
            return true;
        };
        let matchers = NoProxy::parse(list);
        if matchers.all {
            return false;
        }
        if let Some(ip) = ip {
            let ip_hit = matchers.cidrs.iter().any(|c| c.contains(ip))
                || matchers
                    .ips
                    .iter()
                    .any(|(m, p)| canonical(*m) == canonical(ip) && (p.is_empty() || *p == port));
            // Names never match an address.
            return !ip_hit;
        }
        !matchers.domains.iter().any(|d| {
            (host.ends_with(&d.suffix) || (d.match_host && host == d.suffix[1..]))
                && (d.port.is_empty() || d.port == port)
        })
    }
}

/// `NO_PROXY`, parsed as httpproxy's `config.init` does.
#[derive(Default)]
struct NoProxy {
    all: bool,
    cidrs: Vec<Cidr>,
    ips: Vec<(IpAddr, String)>,
    domains: Vec<Domain>,
}

/// A name entry: `suffix` starts with `.`; `match_host` when the name itself matches too.
struct Domain {
    suffix: String,
    port: String,
    match_host: bool,
}

impl NoProxy {
    fn parse(list: &str) -> NoProxy {
        let mut out = NoProxy::default();
        for entry in list.split(',') {
            let p = entry.trim().to_lowercase();
            if p.is_empty() {
                continue;
            }
            if p == "*" {
                out.all = true;
                return out;
            }
            if let Some(net) = Cidr::parse(&p) {
                out.cidrs.push(net);
                continue;
            }
            let (mut phost, pport) = match go_split_host_port(&p) {
                Ok((h, _)) if h.is_empty() => continue,
                Ok((h, port)) => (h, port),
                Err(()) => (p.clone(), String::new()),
            };
            if phost.starts_with('[') && phost.ends_with(']') && phost.len() >= 2 {
                phost = phost[1..phost.len() - 1].to_owned();
            }
            // net.ParseIP: no zone.
            if let Ok(ip) = phost.parse::<IpAddr>() {
                out.ips.push((ip, pport));
                continue;
            }
            if phost.is_empty() {
                continue;
            }
            if phost.starts_with("*.") {
                phost.remove(0);
            }
            let match_host = !phost.starts_with('.');
            if match_host {
                phost.insert(0, '.');
            }
            out.domains.push(Domain {
                suffix: idna_ascii(&phost),
                port: pport,
                match_host,
            });
        }
        out
    }
}

/// The proxy as Go's `parseProxy` reads it: a value without a scheme or a host is `http://…`.
fn parse_proxy(proxy: &str) -> String {
    match proxy.split_once("://") {
        Some((scheme, rest)) if !scheme.is_empty() && !rest.is_empty() => proxy.to_owned(),
        _ => format!("http://{proxy}"),
    }
}

/// `scheme://authority…` → (lower-case scheme, authority without user info).
fn split_url(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    Some((scheme.to_ascii_lowercase(), authority.to_owned()))
}

/// httpproxy `canonicalAddr`: `url.Hostname()` in punycode, and `url.Port()` or the scheme's.
fn canonical_addr(scheme: &str, authority: &str) -> String {
    let (host, port) = url_split_host_port(authority);
    // Go's url.Parse unescapes the host (`%25` before an IPv6 zone).
    let host = idna_ascii(&host.replace("%25", "%"));
    let port = match (port.as_str(), scheme) {
        ("", "http") => "80".to_owned(),
        ("", "https") => "443".to_owned(),
        ("", "socks5") => "1080".to_owned(),
        _ => port,
    };
    // net.JoinHostPort
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// net/url `splitHostPort` (behind `Hostname`/`Port`): a trailing `:digits` is the port, brackets
/// are removed.
fn url_split_host_port(host_port: &str) -> (String, String) {
    let mut host = host_port;
    let mut port = "";
    if let Some(colon) = host.rfind(':') {
        let tail = &host[colon + 1..];
        if tail.bytes().all(|b| b.is_ascii_digit()) {
            port = tail;
            host = &host[..colon];
        }
    }
    if host.len() >= 2 && host.starts_with('[') && host.ends_with(']') {
        host = &host[1..host.len() - 1];
    }
    (host.to_owned(), port.to_owned())
}

/// net `SplitHostPort`, with its errors.
fn go_split_host_port(host_port: &str) -> Result<(String, String), ()> {
    let i = host_port.rfind(':').ok_or(())?;
    let (host, j, k);
    if host_port.starts_with('[') {
        let end = host_port.find(']').ok_or(())?;
        if end + 1 != i {
            return Err(());
        }
        host = &host_port[1..end];
        (j, k) = (1, end + 1);
    } else {
        host = &host_port[..i];
        if host.contains(':') {
            return Err(());
        }
        (j, k) = (0, 0);
    }
    if host_port[j..].contains('[') || host_port[k..].contains(']') {
        return Err(());
    }
    Ok((host.to_owned(), host_port[i + 1..].to_owned()))
}

/// netip `ParseAddr` as `useProxy` uses it: an IPv6 address may carry a zone (dropped).
fn parse_addr(host: &str) -> Option<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    let (addr, zone) = host.split_once('%')?;
    if zone.is_empty() || !addr.contains(':') {
        return None;
    }
    addr.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

/// net `IP.IsLoopback`: 127/8 (an IPv4-mapped one too, through `To4`) or `::1`.
fn is_loopback(ip: IpAddr) -> bool {
    canonical(ip).is_loopback()
}

/// net `IP.To4` where it applies: `::ffff:a.b.c.d` is `a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// httpproxy `idnaASCII`: ASCII as it is; else `idna.Lookup.ToASCII` (UTS 46 with STD3 rules and
/// hyphen checks, no length check), unchanged when that fails.
fn idna_ascii(s: &str) -> String {
    if s.is_ascii() {
        return s.to_owned();
    }
    idna::uts46::Uts46::new()
        .to_ascii(
            s.as_bytes(),
            idna::uts46::AsciiDenyList::STD3,
            idna::uts46::Hyphens::Check,
            idna::uts46::DnsLength::Ignore,
        )
        .map_or_else(|_| s.to_owned(), |a| a.into_owned())
}

/// An IPv4 or IPv6 network (`10.0.0.0/8`, `fd00::/8`), as net `IPNet.Contains` compares: an
/// IPv4-mapped network or address counts as IPv4.
struct Cidr {
    net: IpAddr,
    bits: u32,
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let (addr, bits) = s.split_once('/')?;
        if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) || bits.len() > 3 {
            return None;
        }
        let net: IpAddr = addr.parse().ok()?;
        let bits: u32 = bits.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        if bits > max {
            return None;
        }
        // networkNumberAndMask: an IPv4-mapped network keeps the last 32 bits of its mask.
        Some(match (net, canonical(net)) {
            (IpAddr::V6(_), v4 @ IpAddr::V4(_)) => Cidr {
                net: v4,
                bits: bits.saturating_sub(96),
            },
            _ => Cidr { net, bits },
        })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let (a, b, width) = match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(i)) => (u32::from(n) as u128, u32::from(i) as u128, 32),
            (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
            _ => return false,
        };
        if self.bits == 0 {
            return true;
        }
        let shift = width - self.bits;
        (a >> shift) == (b >> shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::saved::testing::env_of;

    fn with_no_proxy(no_proxy: &str) -> ProxySettings {
        ProxySettings {
            http: Some("http://proxy:3128".into()),
            https: Some("proxy:3129".into()),
            no_proxy: Some(no_proxy.into()),
            cgi: false,
        }
    }

    fn proxied(s: &ProxySettings, url: &str) -> bool {
        s.proxy_for(url).unwrap().is_some()
    }

    #[test]
    fn loopback_is_never_proxied() {
        let p = with_no_proxy("");
        for url in [
            "http://127.0.0.1:4566",
            "https://127.0.0.5/",
            "http://localhost:4566",
            "http://[::1]:4566/",
            // IPv4-mapped loopback: net.IP.IsLoopback looks through To4 (issue #20, item 6).
            "http://[::ffff:127.0.0.1]:8080/state",
            "http://[::ffff:7f00:1]:8080/state",
            "https://[::ffff:127.9.9.9]/",
            "http://u:p@127.0.0.1:1/",
            "http://[::1%25lo]:1/",
        ] {
            assert_eq!(p.proxy_for(url), Ok(None), "{url}");
        }
        // Only exactly `localhost` is special: Go compares the host as written.
        for url in [
            "http://LOCALHOST",
            "http://localhost.:80/",
            "http://a.localhost/",
            "http://[::ffff:10.0.0.1]:80/",
            "http://[::2]/",
        ] {
            assert!(proxied(&p, url), "{url}");
        }
        assert_eq!(
            p.proxy_for("http://sts.internal:8080/"),
            Ok(Some("http://proxy:3128".into()))
        );
        // A proxy without a scheme is http://, and https URLs take HTTPS_PROXY.
        assert_eq!(
            p.proxy_for("https://sts.us-east-1.amazonaws.com"),
            Ok(Some("http://proxy:3129".into()))
        );
        assert_eq!(p.proxy_for("ftp://x/"), Ok(None));
    }

    #[test]
    fn no_proxy_entries() {
        let cases = [
            ("*", "https://sts.amazonaws.com", false),
            ("a.com,*", "https://sts.amazonaws.com", false),
            ("*", "http://10.0.0.1/", false),
            ("amazonaws.com", "https://sts.amazonaws.com", false),
            ("amazonaws.com", "https://amazonaws.com", false),
            (".amazonaws.com", "https://amazonaws.com", true),
            (".amazonaws.com", "https://sts.amazonaws.com", false),
            ("*.amazonaws.com", "https://sts.amazonaws.com", false),
            ("*.amazonaws.com", "https://amazonaws.com", true),
            ("zonaws.com", "https://sts.amazonaws.com", true),
            ("sts.internal:8080", "http://sts.internal:8080/", false),
            ("sts.internal:9090", "http://sts.internal:8080/", true),
            ("sts.internal:80", "http://sts.internal/", false),
            ("sts.internal:443", "https://sts.internal/", false),
            ("10.0.0.0/8", "http://10.1.2.3:80/", false),
            ("10.0.0.0/8", "http://11.1.2.3:80/", true),
            ("10.0.0.0/8", "http://[::ffff:10.1.2.3]/", false),
            ("::ffff:10.0.0.0/104", "http://10.1.2.3/", false),
            ("::ffff:10.0.0.0/104", "http://11.1.2.3/", true),
            ("10.1.2.3", "http://10.1.2.3/", false),
            ("10.1.2.3", "http://[::ffff:10.1.2.3]/", false),
            ("10.1.2.3:8080", "http://10.1.2.3:8080/", false),
            ("10.1.2.3:8080", "http://10.1.2.3/", true),
            ("[fd00::1]:80", "http://[fd00::1]/", false),
            ("fd00::1", "http://[fd00::1]:9/", false),
            ("fd00::/8", "http://[fd00::1]:80/", false),
            ("fd00::/8", "http://10.0.0.1:80/", true),
            // Names never match an address (x/net since CVE-2025-22870).
            ("2.3", "http://10.1.2.3/", true),
            ("10.0.0.0/8/1", "http://10.0.0.1/", true),
            (" other.com , STS.Internal ", "http://sts.internal/", false),
            ("sts.internal", "http://STS.Internal/", false),
            (":80", "http://sts.internal/", true),
            ("", "http://sts.internal/", true),
            // IDNA: both sides in punycode.
            ("bücher.example", "http://xn--bcher-kva.example/", false),
            ("xn--bcher-kva.example", "http://bücher.example/", false),
            (".BÜCHER.example", "http://www.bücher.example/", false),
            ("bücher.example", "http://bucher.example/", true),
        ];
        for (no_proxy, url, want) in cases {
            assert_eq!(
                proxied(&with_no_proxy(no_proxy), url),
                want,
                "NO_PROXY={no_proxy:?} {url}"
            );
        }
    }

    #[test]
    fn go_host_port_splitting() {
        let ok = |s: &str, h: &str, p: &str| {
            assert_eq!(go_split_host_port(s), Ok((h.into(), p.into())), "{s}")
        };
        ok("a.com:80", "a.com", "80");
        ok("[::1]:80", "::1", "80");
        ok(":80", "", "80");
        for bad in ["a.com", "::1", "[::1]", "[::1]x:80", "a]:80", "[a:80"] {
            assert_eq!(go_split_host_port(bad), Err(()), "{bad}");
        }
        assert_eq!(
            url_split_host_port("[::1]:8080"),
            ("::1".into(), "8080".into())
        );
        assert_eq!(url_split_host_port("h:"), ("h".into(), String::new()));
        assert_eq!(url_split_host_port("h:x"), ("h:x".into(), String::new()));
        assert!(is_loopback("127.3.2.1".parse().unwrap()));
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("128.0.0.1".parse().unwrap()));
    }

    #[test]
    fn cgi_refuses_http_proxy_for_http_only() {
        let env = env_of(&[
            ("HTTP_PROXY", "http://p:1"),
            ("HTTPS_PROXY", "http://p:2"),
            ("REQUEST_METHOD", "GET"),
        ]);
        let s = ProxySettings::resolve(&env, None, None, None);
        assert!(s.proxy_for("http://state.example/").is_err());
        // Loopback and NO_PROXY are not asked: the refusal comes first in Go too.
        assert!(s.proxy_for("http://127.0.0.1/").is_err());
        assert_eq!(
            s.proxy_for("https://state.example/"),
            Ok(Some("http://p:2".into()))
        );
        let no_http =
            ProxySettings::resolve(env_of(&[("REQUEST_METHOD", "GET")]), None, None, None);
        assert_eq!(no_http.proxy_for("http://state.example/"), Ok(None));
    }

    #[test]
    fn backend_attributes_replace_the_variables_one_by_one() {
        let env = env_of(&[
            ("HTTP_PROXY", "http://env-http"),
            ("https_proxy", "http://env-https"),
            ("NO_PROXY", "a.com"),
        ]);
        let s = ProxySettings::resolve(&env, None, Some("http://attr-https"), None);
        assert_eq!(
            s,
            ProxySettings {
                http: Some("http://env-http".into()),
                https: Some("http://attr-https".into()),
                no_proxy: Some("a.com".into()),
                cgi: false,
            }
        );
        let upper_first = env_of(&[
            ("HTTPS_PROXY", "http://upper"),
            ("https_proxy", "http://lower"),
        ]);
        let s = ProxySettings::resolve(&upper_first, None, None, None);
        assert_eq!(s.https.as_deref(), Some("http://upper"));
        let none = ProxySettings::resolve(env_of(&[("HTTP_PROXY", "")]), None, None, None);
        assert_eq!(none, ProxySettings::default());
        assert_eq!(none.proxy_for("http://sts.internal"), Ok(None));
    }

    #[test]
    fn legacy_mode_http_proxy_serves_https_and_empty_means_none() {
        let bare = env_of(&[]);
        // `http_proxy` alone serves https too (HTTPProxyModeLegacy).
        let s = ProxySettings::resolve(&bare, Some("http://attr"), None, None);
        assert_eq!(s.https.as_deref(), Some("http://attr"));
        // …unless HTTPS_PROXY is set.
        let env = env_of(&[
            ("HTTPS_PROXY", "http://env-https"),
            ("HTTP_PROXY", "http://env"),
        ]);
        let s = ProxySettings::resolve(&env, Some("http://attr"), None, None);
        assert_eq!(s.https.as_deref(), Some("http://env-https"));
        // An empty attribute is "no proxy", over the variable.
        let s = ProxySettings::resolve(&env, Some(""), Some(""), None);
        assert_eq!((s.http, s.https), (None, None));
        let s = ProxySettings::resolve(&env, None, Some(""), None);
        assert_eq!(s.http.as_deref(), Some("http://env"));
        assert_eq!(s.https, None);
        // An empty `no_proxy` is unset: NO_PROXY applies.
        let env = env_of(&[("NO_PROXY", "a.com")]);
        let s = ProxySettings::resolve(&env, None, None, Some(""));
        assert_eq!(s.no_proxy.as_deref(), Some("a.com"));
    }
}
