//! The http backend behind [`Credential`] (GitLab-managed Terraform state and any REST state server).
//!
//! terraform's http backend (`internal/backend/remote-state/http`, 1.11) saves `password` — for
//! GitLab a personal, project or CI job token, which expires — in plain text in the saved backend.
//! Facts this module relies on, from that source:
//! - basic auth is sent only when the username is not empty (`httpClient.httpRequest`);
//! - every attribute falls back to a variable when unset: `address` ← `TF_HTTP_ADDRESS`, `username` ←
//!   `TF_HTTP_USERNAME`, `password` ← `TF_HTTP_PASSWORD`, the TLS PEMs ← `TF_HTTP_CLIENT_*_PEM`
//!   (`GetAttrEnvDefaultFallback`), so once the saved password is removed terraform uses
//!   `TF_HTTP_PASSWORD`; only a null attribute falls back: a saved `""` is a value (issue #20);
//! - reading state is `GET address`: 200 is state, 204/404 "no state yet", 401 "requires auth", 403
//!   "invalid auth"; the retrying client retries connection errors and 5xx, never 401/403;
//! - TLS: `skip_cert_verification`, `client_ca_certificate_pem` (replaces the system roots),
//!   `client_certificate_pem` + `client_private_key_pem` (mTLS); proxies from the environment (Go's
//!   `ProxyFromEnvironment`, `aws::proxy`), chosen from the address as written; a proxy's own 407
//!   is no verdict.
//!
//! The check is one request to `address` with the saved credentials: `HEAD` (the same
//! authentication as `GET`, without the state in the answer), and only if the server does not
//! implement `HEAD` (405, 501) a `GET` whose body is never read. 401/403 → rejected; 2xx/404 →
//! valid; anything else → no verdict.

use std::any::Any;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use url::Url;

use crate::aws::proxy::ProxySettings;
use crate::aws::sts::Ambient;
use crate::aws::verdict::Verdict;
use crate::backends::saved::{SavedBackend, Secret};
use crate::backends::secrets;
use crate::credentials::{Checkable, Credential, Env};
use crate::net::client::{self, Request, Tls};

/// The saved attributes that hold credentials (a credential-only `init` may change them).
pub const CREDENTIAL_ATTRS: &[&str] = &["username", "password", "client_private_key_pem"];

/// The timeout of checks made after terraform itself has reached the server.
const PATIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The fallback's source when it works only with `TF_HTTP_USERNAME` instead of the saved username:
/// the repair then removes the saved username too.
const ENV_USERNAME_SOURCE: &str = "TF_HTTP_USERNAME and TF_HTTP_PASSWORD";

/// An http backend's saved password, and how to reach the server as terraform would.
pub struct HttpPassword {
    /// `address`, or why it cannot be used.
    address: Result<Url, String>,
    /// The username terraform sends (saved, else `TF_HTTP_USERNAME`).
    username: String,
    /// Whether that username is the saved one.
    username_saved: bool,
    password: Secret,
    tls: Tls,
    /// The mTLS private key is saved (the repair removes it too: it is a secret).
    key_saved: bool,
    proxy: Result<Option<Url>, String>,
    /// `TFSHIM_STS_TIMEOUT`: the budget of the whole check, verdict and fallback together.
    timeout: Duration,
    /// When that budget ends, set by the first request: every later one (GET after HEAD, the
    /// fallback's, `TF_HTTP_USERNAME`'s) gets only what is left, so that up to six requests cost
    /// terraform at most one timeout, not six (#20).
    deadline: OnceLock<Instant>,
    /// What terraform falls back to: `TF_HTTP_USERNAME`, `TF_HTTP_PASSWORD`,
    /// `TF_HTTP_CLIENT_PRIVATE_KEY_PEM`, read once.
    env_username: Option<String>,
    env_password: Option<Secret>,
    env_key: Option<Secret>,
}

impl std::fmt::Debug for HttpPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPassword")
            .field(
                "address",
                &self
                    .address
                    .as_ref()
                    .map(|u| secrets::url_redacted(u.as_str())),
            )
            .field("username", &self.username)
            .field("password", &self.password)
            .field("key_saved", &self.key_saved)
            .finish_non_exhaustive()
    }
}

impl HttpPassword {
    /// `None` unless the backend is http, saved a password, and terraform would send it (it sends
    /// basic auth only with a username).
    ///
    /// Every attribute is read as terraform's `Configure` reads it (`GetAttrEnvDefaultFallback`):
    /// the variable applies only when the attribute is null, so a saved `""` is a value — an empty
    /// username sends no basic auth and an empty PEM no certificate, whatever `TF_HTTP_*` says
    /// (issue #20, item 4).
    pub fn from_backend(b: &SavedBackend, env: Env, timeout: Duration) -> Option<HttpPassword> {
        if b.kind != "http" {
            return None;
        }
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        // The attribute, else (only when null) the variable: terraform's value, `""` included.
        let attr =
            |name: &str, var_name: &str| b.value(name).map(str::to_owned).or_else(|| var(var_name));
        // An empty saved password is no secret that can go stale.
        let password = Secret::new(b.value("password").filter(|p| !p.is_empty())?);
        let username = attr("username", "TF_HTTP_USERNAME").filter(|u| !u.is_empty())?;
        let username_saved = b.value("username").is_some();
        let raw_address = attr("address", "TF_HTTP_ADDRESS");
        let address = raw_address
            .clone()
            .ok_or_else(|| "no address is saved and TF_HTTP_ADDRESS is not set".to_owned())
            .and_then(|a| match a.as_str() {
                "" => Err(
                    "the saved address is empty (terraform: address argument is required)"
                        .to_owned(),
                ),
                _ => Url::parse(&a).map_err(|_| "the saved address is not a URL".to_owned()),
            })
            .and_then(|u| match u.scheme() {
                "http" | "https" => Ok(u),
                _ => Err("the saved address is not http or https".into()),
            });
        // terraform tests each PEM `!= ""`: an empty one (saved or not) is none.
        let pem = |name: &str, var_name: &str| attr(name, var_name).filter(|p| !p.is_empty());
        let key_saved = b
            .value("client_private_key_pem")
            .is_some_and(|k| !k.is_empty());
        let tls = Tls {
            skip_verify: b.flag("skip_cert_verification"),
            ca_pem: pem(
                "client_ca_certificate_pem",
                "TF_HTTP_CLIENT_CA_CERTIFICATE_PEM",
            ),
            client_cert_pem: pem("client_certificate_pem", "TF_HTTP_CLIENT_CERTIFICATE_PEM"),
            client_key_pem: pem("client_private_key_pem", "TF_HTTP_CLIENT_PRIVATE_KEY_PEM")
                .map(Secret::new),
        };
        // Go's proxy rules (`aws::proxy`); the http backend has no proxy attributes. The address
        // as written, not as `Url` normalised it: Go compares the host it was given (`LOCALHOST`
        // is not `localhost` to it).
        let proxy = match (&address, &raw_address) {
            (Ok(_), Some(raw)) => ProxySettings::resolve(env, None, None, None)
                .proxy_for(raw)
                .and_then(|p| match p {
                    None => Ok(None),
                    Some(p) => Url::parse(&p)
                        .map(Some)
                        .map_err(|_| "the proxy variable is not a URL".to_owned()),
                }),
            _ => Ok(None),
        };
        Some(HttpPassword {
            address,
            username,
            username_saved,
            password,
            tls,
            key_saved,
            proxy,
            timeout,
            deadline: OnceLock::new(),
            env_username: var("TF_HTTP_USERNAME"),
            env_password: var("TF_HTTP_PASSWORD").map(Secret::new),
            env_key: var("TF_HTTP_CLIENT_PRIVATE_KEY_PEM").map(Secret::new),
        })
    }

    /// The end of this credential's check (started by its first request).
    fn deadline(&self) -> Instant {
        *self.deadline.get_or_init(|| Instant::now() + self.timeout)
    }

    /// One request with these credentials; the verdict.
    fn ask(&self, username: &str, password: &Secret, tls: &Tls) -> Verdict {
        let (url, proxy) = match (&self.address, &self.proxy) {
            (Ok(u), Ok(p)) => (u, p.as_ref()),
            (Err(why), _) | (_, Err(why)) => return Verdict::unknown(why.clone()),
        };
        let request = |method| Request {
            method,
            url,
            basic_auth: Some((username, password)),
            tls,
            proxy,
            deadline: self.deadline(),
            user_agent: concat!("tfshim/", env!("CARGO_PKG_VERSION")),
        };
        let mut answer = client::status(&request("HEAD"));
        // GET, whose body is never read (the connection closes first), where HEAD says nothing
        // for certain: a server without HEAD (405, 501), and a rejection (401, 403), which a front
        // end may give HEAD alone — terraform's GET would work, and a rejection leads to a repair
        // or a refusal. A revoked password costs one more request.
        if matches!(answer, Ok(401 | 403 | 405 | 501)) {
            answer = client::status(&request("GET"));
        }
        verdict_of(answer)
    }
}

/// The verdict an answer gives. Pure.
pub fn verdict_of(answer: Result<u16, String>) -> Verdict {
    match answer {
        Ok(code @ (401 | 403)) => Verdict::Rejected {
            code: format!("HTTP {code}"),
        },
        // No identity to show: the server only said yes.
        Ok(200..=299 | 404) => Verdict::Valid { arn: String::new() },
        // A proxy's own answer (Proxy Authentication Required): the state server never saw the
        // password, so it says nothing about it (issue #20, item 6). A refused CONNECT tunnel is
        // no status at all (`net::client`), so no verdict either.
        Ok(407) => Verdict::unknown("the proxy asks for authentication (HTTP 407)"),
        Ok(code) => Verdict::unknown(format!("HTTP {code}")),
        Err(why) => Verdict::unknown(why),
    }
}

impl Credential for HttpPassword {
    fn kind(&self) -> &'static str {
        "http"
    }
    fn present(&self) -> bool {
        true
    }
    fn shown(&self) -> String {
        format!("user {}", self.username)
    }
    fn label(&self) -> String {
        format!("password (user {})", self.username)
    }
    fn noun(&self) -> &'static str {
        "http backend"
    }
    fn judge(&self) -> &'static str {
        "the state server"
    }
    fn checkable(&self) -> Checkable {
        match (&self.address, &self.proxy) {
            (Err(why), _) | (_, Err(why)) => Checkable::No(why.clone()),
            _ => Checkable::Yes,
        }
    }
    fn fallback_checkable(&self) -> bool {
        self.checkable() == Checkable::Yes
    }
    fn check(&self) -> Verdict {
        self.ask(&self.username, &self.password, &self.tls)
    }
    fn check_fallback(&self) -> Ambient {
        let Some(password) = &self.env_password else {
            return Ambient {
                verdict: Verdict::Missing,
                source: "TF_HTTP_PASSWORD (not set)".into(),
            };
        };
        let mut tls = self.tls.clone();
        if self.key_saved {
            // The saved key goes with the password; terraform then reads the variable.
            match &self.env_key {
                Some(k) => tls.client_key_pem = Some(k.clone()),
                None => {
                    return Ambient {
                        verdict: Verdict::Missing,
                        source: "TF_HTTP_CLIENT_PRIVATE_KEY_PEM (not set; the saved mTLS key \
                                 is removed with the password)"
                            .into(),
                    }
                }
            }
        }
        let verdict = self.ask(&self.username, password, &tls);
        // The saved username may be what no longer works (another user's token): terraform would
        // use TF_HTTP_USERNAME once the saved username is gone too.
        if let (Verdict::Rejected { .. }, true, Some(env_user)) =
            (&verdict, self.username_saved, &self.env_username)
        {
            if *env_user != self.username {
                let other = self.ask(env_user, password, &tls);
                if matches!(other, Verdict::Valid { .. }) {
                    return Ambient {
                        verdict: other,
                        source: ENV_USERNAME_SOURCE.into(),
                    };
                }
            }
        }
        Ambient {
            verdict,
            source: format!("TF_HTTP_PASSWORD (user {})", self.username),
        }
    }
    fn looked(&self, _env: Env) -> String {
        format!(
            "TF_HTTP_PASSWORD with the username {} (and TF_HTTP_USERNAME)",
            self.username
        )
    }
    fn advice(&self) -> &'static str {
        "Set TF_HTTP_PASSWORD to a working token (and TF_HTTP_USERNAME if the user differs) and run \
         the command again"
    }
    fn be_patient(&mut self) {
        self.timeout = self.timeout.max(PATIENT_TIMEOUT);
        // A new check, with a budget of its own.
        self.deadline = OnceLock::new();
    }
    fn removes(&self, fallback: Option<&Ambient>) -> Vec<&'static str> {
        let mut out = vec!["password"];
        if self.key_saved {
            out.push("client_private_key_pem");
        }
        if self.username_saved && fallback.is_some_and(|a| a.source == ENV_USERNAME_SOURCE) {
            out.push("username");
        }
        out
    }
    fn still_saved(&self, current: &SavedBackend) -> bool {
        current.kind == "http" && current.string("password") == Some(self.password.expose())
    }
    fn same_check(&self, other: &dyn Credential) -> bool {
        other
            .as_any()
            .downcast_ref::<HttpPassword>()
            .is_some_and(|o| {
                o.address == self.address
                    && o.username == self.username
                    && o.password == self.password
                    && o.tls == self.tls
                    && o.proxy == self.proxy
            })
    }
    fn same_fallback(&self, other: &dyn Credential) -> bool {
        other
            .as_any()
            .downcast_ref::<HttpPassword>()
            .is_some_and(|o| {
                o.address == self.address
                    && o.username == self.username
                    && o.username_saved == self.username_saved
                    && o.key_saved == self.key_saved
                    && o.tls == self.tls
                    && o.proxy == self.proxy
            })
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::saved::testing::{env_of, saved};

    const T: Duration = Duration::from_secs(1);

    fn http(config: &str, env: &'static [(&'static str, &'static str)]) -> Option<HttpPassword> {
        HttpPassword::from_backend(&saved("http", config, 1), &env_of(env), T)
    }

    #[test]
    fn what_is_checked() {
        let c = http(
            r#"{"address":"https://gitlab.example/api/v4/projects/1/terraform/state/prod","username":"ci","password":"glpat-OLD"}"#,
            &[],
        )
        .unwrap();
        assert_eq!(c.checkable(), Checkable::Yes);
        assert_eq!(c.label(), "password (user ci)");
        assert_eq!(c.removes(None), ["password"]);
        // No password saved, or no username anywhere (terraform then sends no auth): nothing to check.
        assert!(http(r#"{"address":"https://x","username":"ci"}"#, &[]).is_none());
        assert!(http(r#"{"address":"https://x","password":"p"}"#, &[]).is_none());
        let env_user = http(
            r#"{"address":"https://x","password":"p"}"#,
            &[("TF_HTTP_USERNAME", "bot")],
        )
        .unwrap();
        assert_eq!(env_user.shown(), "user bot");
        // The address from the environment, as terraform reads it.
        let c = http(
            r#"{"password":"p","username":"u"}"#,
            &[("TF_HTTP_ADDRESS", "http://127.0.0.1:1/s")],
        )
        .unwrap();
        assert_eq!(c.checkable(), Checkable::Yes);
        let c = http(r#"{"password":"p","username":"u"}"#, &[]).unwrap();
        assert!(matches!(c.checkable(), Checkable::No(_)));
        let c = http(
            r#"{"address":"ftp://x","password":"p","username":"u"}"#,
            &[],
        )
        .unwrap();
        assert!(matches!(c.checkable(), Checkable::No(_)));
    }

    #[test]
    fn verdicts() {
        assert_eq!(
            verdict_of(Ok(401)),
            Verdict::Rejected {
                code: "HTTP 401".into()
            }
        );
        assert!(matches!(verdict_of(Ok(403)), Verdict::Rejected { .. }));
        for ok in [200, 204, 404] {
            assert!(matches!(verdict_of(Ok(ok)), Verdict::Valid { .. }), "{ok}");
        }
        for none in [500, 502, 503, 302, 429, 423, 407] {
            assert!(
                matches!(verdict_of(Ok(none)), Verdict::Unknown { .. }),
                "{none}"
            );
        }
        assert_eq!(
            verdict_of(Err("timeout".into())),
            Verdict::unknown("timeout")
        );
    }

    /// Issue #20, item 4: a saved `""` is terraform's value; the variable applies only to null.
    #[test]
    fn empty_values_are_values() {
        let env: &[(&str, &str)] = &[
            ("TF_HTTP_USERNAME", "bot"),
            ("TF_HTTP_ADDRESS", "http://127.0.0.1:1/env"),
            ("TF_HTTP_CLIENT_CA_CERTIFICATE_PEM", "ENV-CA"),
            ("TF_HTTP_CLIENT_CERTIFICATE_PEM", "ENV-CERT"),
            ("TF_HTTP_CLIENT_PRIVATE_KEY_PEM", "ENV-KEY"),
        ];
        // `username = ""`: terraform sends no basic auth, so the saved password is never sent.
        assert!(http(
            r#"{"address":"http://127.0.0.1:1/s","username":"","password":"p"}"#,
            env
        )
        .is_none());
        // null: TF_HTTP_USERNAME.
        let c = http(
            r#"{"address":"http://127.0.0.1:1/s","username":null,"password":"p"}"#,
            env,
        )
        .unwrap();
        assert_eq!(c.shown(), "user bot");
        // An empty password is nothing that can go stale.
        assert!(http(
            r#"{"address":"http://127.0.0.1:1/s","username":"u","password":""}"#,
            env
        )
        .is_none());
        // `address = ""`: terraform stops ("address argument is required"), never TF_HTTP_ADDRESS.
        let c = http(r#"{"address":"","username":"u","password":"p"}"#, env).unwrap();
        assert!(matches!(c.checkable(), Checkable::No(_)));
        // Empty PEMs are none, and keep the variables away.
        let c = http(
            r#"{"address":"https://x/s","username":"u","password":"p","client_ca_certificate_pem":"","client_certificate_pem":"","client_private_key_pem":""}"#,
            env,
        )
        .unwrap();
        assert_eq!(c.tls, Tls::default());
        assert_eq!(c.removes(None), ["password"]);
        let c = http(
            r#"{"address":"https://x/s","username":"u","password":"p","client_ca_certificate_pem":null}"#,
            env,
        )
        .unwrap();
        assert_eq!(c.tls.ca_pem.as_deref(), Some("ENV-CA"));
        assert_eq!(c.tls.client_cert_pem.as_deref(), Some("ENV-CERT"));
    }

    /// Issue #20, item 6: the address as written decides the proxy, by Go's rules.
    #[test]
    fn the_proxy_is_chosen_as_go_chooses() {
        let env: &[(&str, &str)] = &[("HTTP_PROXY", "http://127.0.0.1:9")];
        let proxy = |address: &str| {
            http(
                &format!(r#"{{"address":"{address}","username":"u","password":"p"}}"#),
                env,
            )
            .unwrap()
            .proxy
            .map(|p| p.map(|u| u.to_string()))
        };
        assert_eq!(proxy("http://[::ffff:127.0.0.1]:8080/s"), Ok(None));
        assert_eq!(proxy("http://localhost:8080/s"), Ok(None));
        // `Url` would lower-case it; Go does not, and proxies it.
        assert_eq!(
            proxy("http://LOCALHOST:8080/s"),
            Ok(Some("http://127.0.0.1:9/".into()))
        );
        let cgi: &[(&str, &str)] = &[
            ("HTTP_PROXY", "http://127.0.0.1:9"),
            ("REQUEST_METHOD", "GET"),
        ];
        let c = http(
            r#"{"address":"http://state.example/s","username":"u","password":"p"}"#,
            cgi,
        )
        .unwrap();
        assert!(matches!(c.checkable(), Checkable::No(_)));
    }

    #[test]
    fn the_private_key_goes_with_the_password() {
        let c = http(
            r#"{"address":"https://x","username":"u","password":"p","client_certificate_pem":"C","client_private_key_pem":"K"}"#,
            &[],
        )
        .unwrap();
        assert_eq!(c.removes(None), ["password", "client_private_key_pem"]);
        // Without TF_HTTP_CLIENT_PRIVATE_KEY_PEM terraform could not make the TLS handshake.
        let fallback = c.check_fallback();
        assert_eq!(fallback.verdict, Verdict::Missing);
        let shown = format!("{c:?} {fallback:?}");
        assert!(!shown.contains("\"p\"") && !shown.contains('K'), "{shown}");
    }

    #[test]
    fn the_username_goes_only_when_the_variable_works_instead() {
        let c = http(
            r#"{"address":"https://x","username":"u","password":"p"}"#,
            &[],
        )
        .unwrap();
        let env_user = Ambient {
            verdict: Verdict::Valid { arn: String::new() },
            source: ENV_USERNAME_SOURCE.into(),
        };
        assert_eq!(c.removes(Some(&env_user)), ["password", "username"]);
        assert_eq!(c.check_fallback().verdict, Verdict::Missing);
    }

    #[test]
    fn debug_hides_the_password_and_url_user_info() {
        let c = http(
            r#"{"address":"https://me:urlsecret@x/s?private_token=glpat-querysecret","username":"u","password":"hunter2"}"#,
            &[],
        )
        .unwrap();
        let shown = format!("{c:?}");
        for secret in ["hunter2", "urlsecret", "querysecret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
