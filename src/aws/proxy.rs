//! Which proxy, if any, terraform's HTTP client would send the STS call through. terraform is a Go
//! program: it follows golang.org/x/net/http/httpproxy (`Config.ProxyFunc`), and tfshim must reach
//! the same STS the same way or its verdict is about some other path. Those rules, here, pure:
//!
//! - `https://` URLs use `HTTPS_PROXY`, `http://` URLs `HTTP_PROXY` (upper case first, then lower
//!   case; empty means unset); a proxy without a scheme is `http://`.
//! - `localhost` and loopback addresses are never proxied, whatever the variables say.
//! - `NO_PROXY`: comma-separated; `*` exempts everything; an IP or CIDR exempts those addresses; a
//!   name exempts itself and its subdomains (`.name` and `*.name` only the subdomains); any entry may
//!   carry a `:port`.
//! - The S3 backend's `http_proxy`/`https_proxy`/`no_proxy` (terraform 1.6+) replace the matching
//!   variable, field by field (aws-sdk-go-base v2 `internal/httpclient`).

use std::net::IpAddr;

/// The three settings, after the backend's attributes were laid over the environment's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    pub http: Option<String>,
    pub https: Option<String>,
    pub no_proxy: Option<String>,
}

impl ProxySettings {
    /// The environment's settings with the backend's attributes (each `None` when not set) on top.
    pub fn resolve(
        env: impl Fn(&str) -> Option<String>,
        http: Option<&str>,
        https: Option<&str>,
        no_proxy: Option<&str>,
    ) -> ProxySettings {
        let any = |upper: &str, lower: &str| {
            env(upper)
                .filter(|v| !v.is_empty())
                .or_else(|| env(lower).filter(|v| !v.is_empty()))
        };
        let attr = |v: Option<&str>| v.filter(|v| !v.is_empty()).map(str::to_owned);
        ProxySettings {
            http: attr(http).or_else(|| any("HTTP_PROXY", "http_proxy")),
            https: attr(https).or_else(|| any("HTTPS_PROXY", "https_proxy")),
            no_proxy: attr(no_proxy).or_else(|| any("NO_PROXY", "no_proxy")),
        }
    }

    /// The proxy URL for a request to `url` (`scheme://host[:port]/…`), or `None` to go direct.
    pub fn proxy_for(&self, url: &str) -> Option<String> {
        let (scheme, host, port) = split_url(url)?;
        let proxy = match scheme.as_str() {
            "https" => self.https.as_ref(),
            "http" => self.http.as_ref(),
            _ => None,
        }?;
        if !self.use_proxy(&host, &port) {
            return None;
        }
        Some(if proxy.contains("://") {
            proxy.clone()
        } else {
            format!("http://{proxy}")
        })
    }

    fn use_proxy(&self, host: &str, port: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        if host == "localhost" {
            return false;
        }
        let ip = host.parse::<IpAddr>().ok();
        if ip.is_some_and(|ip| ip.is_loopback()) {
            return false;
        }
        let Some(list) = &self.no_proxy else {
            return true;
        };
        for entry in list.split(',') {
            let entry = entry.trim().to_ascii_lowercase();
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                return false;
            }
            if let Some(net) = Cidr::parse(&entry) {
                if ip.is_some_and(|ip| net.contains(ip)) {
                    return false;
                }
                continue;
            }
            let (phost, pport) = match split_host_port(&entry) {
                Some((h, _)) if h.is_empty() => continue,
                Some((h, p)) => (h, p),
                None => (entry.clone(), String::new()),
            };
            let port_ok = pport.is_empty() || pport == port;
            if let Ok(pip) = phost.parse::<IpAddr>() {
                if ip == Some(pip) && port_ok {
                    return false;
                }
                continue;
            }
            let (suffix, match_host) = match phost.strip_prefix("*.") {
                Some(rest) => (format!(".{rest}"), false),
                None if phost.starts_with('.') => (phost.clone(), false),
                None => (format!(".{phost}"), true),
            };
            if (host.ends_with(&suffix) || (match_host && host == suffix[1..])) && port_ok {
                return false;
            }
        }
        true
    }
}

/// `scheme://[user@]host[:port]/…` → (scheme, host without brackets, port or the scheme's default).
fn split_url(url: &str) -> Option<(String, String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let default_port = match scheme.as_str() {
        "https" => "443",
        _ => "80",
    };
    let (host, port) = match split_host_port(authority) {
        Some((h, p)) => (h, p),
        None => (authority.trim_matches(['[', ']']).to_owned(), String::new()),
    };
    let port = if port.is_empty() {
        default_port.to_owned()
    } else {
        port
    };
    Some((scheme, host, port))
}

/// `host:port` or `[v6]:port` → (host, port); `None` when there is no port part.
fn split_host_port(s: &str) -> Option<(String, String)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host.to_owned(), port.to_owned()));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') {
        // A bare IPv6 address, not host:port.
        return None;
    }
    Some((host.to_owned(), port.to_owned()))
}

/// An IPv4 or IPv6 network (`10.0.0.0/8`, `fd00::/8`).
struct Cidr {
    net: IpAddr,
    bits: u32,
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let (addr, bits) = s.split_once('/')?;
        let net: IpAddr = addr.parse().ok()?;
        let bits: u32 = bits.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        (bits <= max).then_some(Cidr { net, bits })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let (a, b, width) = match (self.net, ip) {
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
        }
    }

    #[test]
    fn loopback_is_never_proxied() {
        let p = with_no_proxy("");
        for url in [
            "http://127.0.0.1:4566",
            "https://127.0.0.5/",
            "http://localhost:4566",
            "http://LOCALHOST",
            "http://[::1]:4566/",
        ] {
            assert_eq!(p.proxy_for(url), None, "{url}");
        }
        assert_eq!(
            p.proxy_for("http://sts.internal:8080/"),
            Some("http://proxy:3128".into())
        );
        // A proxy without a scheme is http://, and https URLs take HTTPS_PROXY.
        assert_eq!(
            p.proxy_for("https://sts.us-east-1.amazonaws.com"),
            Some("http://proxy:3129".into())
        );
    }

    #[test]
    fn no_proxy_entries() {
        let cases = [
            ("*", "https://sts.amazonaws.com", false),
            ("amazonaws.com", "https://sts.amazonaws.com", false),
            ("amazonaws.com", "https://amazonaws.com", false),
            (".amazonaws.com", "https://amazonaws.com", true),
            (".amazonaws.com", "https://sts.amazonaws.com", false),
            ("*.amazonaws.com", "https://sts.amazonaws.com", false),
            ("zonaws.com", "https://sts.amazonaws.com", true),
            ("sts.internal:8080", "http://sts.internal:8080/", false),
            ("sts.internal:9090", "http://sts.internal:8080/", true),
            ("10.0.0.0/8", "http://10.1.2.3:80/", false),
            ("10.0.0.0/8", "http://11.1.2.3:80/", true),
            ("10.1.2.3", "http://10.1.2.3/", false),
            ("fd00::/8", "http://[fd00::1]:80/", false),
            (" other.com , STS.Internal ", "http://sts.internal/", false),
            ("", "http://sts.internal/", true),
        ];
        for (no_proxy, url, proxied) in cases {
            assert_eq!(
                with_no_proxy(no_proxy).proxy_for(url).is_some(),
                proxied,
                "NO_PROXY={no_proxy:?} {url}"
            );
        }
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
        assert_eq!(none.proxy_for("http://sts.internal"), None);
    }
}
