//! Asking STS `GetCallerIdentity` whether credentials work: the saved static key, and the ambient
//! credentials terraform would fall back to once the saved key is gone.
//!
//! This is the only module that touches the AWS SDK and the only async code. A current-thread tokio
//! runtime is built on demand, so the pass-through path never pays for it. Calls are aimed where
//! terraform's S3 backend would aim them (endpoint, region, CA bundle, proxy), with no retries and a
//! short timeout: a preflight that hangs would be worse than none.
//!
//! Over 500 lines only because its unit tests (a third of the file) are kept beside the code.

use std::env;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sts::config::retry::RetryConfig;
use aws_sdk_sts::config::timeout::TimeoutConfig;
use aws_sdk_sts::config::{AppName, BehaviorVersion, Credentials, Region};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::{HttpConnectorSettings, SharedHttpClient};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

use crate::aws::chain::{self, expand_home, Generation, ProfileEndpoint, ProfileSettings};
use crate::aws::fresh;
use crate::aws::proxy::ProxySettings;
use crate::aws::verdict::{classify, Failure, FailureKind, Verdict};
use crate::backends::saved::{SavedBackend, StaticCredentials};
use crate::backends::secrets;
use crate::boundary::contain;
use crate::log;

/// Where and how to reach STS, as terraform's S3 backend would. Its `Debug` shows the endpoint
/// redacted (user info and query hidden), as any URL that may carry a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// The STS endpoint terraform would use; `None`: the SDK's default for the region.
    pub endpoint: Option<String>,
    pub region: String,
    pub ca_bundle: Option<PathBuf>,
    pub proxy: Proxy,
    pub use_fips: bool,
    pub use_dual_stack: bool,
    pub timeout: Duration,
    /// Which terraform's rules were followed (they differ for endpoints and the credential order).
    pub generation: Generation,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field(
                "endpoint",
                &self
                    .endpoint
                    .as_deref()
                    .map(crate::backends::secrets::url_redacted),
            )
            .field("region", &self.region)
            .field("ca_bundle", &self.ca_bundle)
            .field("proxy", &self.proxy)
            .field("use_fips", &self.use_fips)
            .field("use_dual_stack", &self.use_dual_stack)
            .field("timeout", &self.timeout)
            .field("generation", &self.generation)
            .finish()
    }
}

/// The backend's own proxy settings, or the usual environment variables. Its `Debug` hides the
/// user-info part of proxy URLs (`http://user:password@proxy`).
#[derive(Clone, PartialEq, Eq)]
pub enum Proxy {
    FromEnv,
    Explicit {
        http: Option<String>,
        https: Option<String>,
        no_proxy: Option<String>,
    },
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hide = |url: &Option<String>| url.as_deref().map(secrets::url_redacted);
        match self {
            Proxy::FromEnv => f.write_str("FromEnv"),
            Proxy::Explicit {
                http,
                https,
                no_proxy,
            } => f
                .debug_struct("Explicit")
                .field("http", &hide(http))
                .field("https", &hide(https))
                .field("no_proxy", no_proxy)
                .finish(),
        }
    }
}

/// The ambient credentials' verdict and a description of where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ambient {
    pub verdict: Verdict,
    /// Which source of the chain supplies them (`chain::source`).
    pub source: String,
}

impl Target {
    /// terraform reads a relative `custom_ca_bundle` from the directory it runs in (`-chdir`), not
    /// from where tfshim was started.
    pub fn anchored(mut self, work_dir: &Path) -> Target {
        if let Some(ca) = &mut self.ca_bundle {
            if ca.is_relative() {
                *ca = work_dir.join(&*ca);
            }
        }
        self
    }

    /// Derives the target from the saved backend, the environment and what the selected profile of
    /// the AWS config files says (`profile`), by the rules of terraform's `generation`. `Err` says
    /// why tfshim cannot reproduce terraform's call (and so must not judge the key). Pure.
    pub fn from_backend(
        b: &SavedBackend,
        env: impl Fn(&str) -> Option<String>,
        generation: Generation,
        profile: &ProfileEndpoint,
        timeout: Duration,
    ) -> Result<Target, String> {
        if b.flag("insecure") {
            return Err("the backend sets `insecure = true`, which tfshim cannot reproduce".into());
        }
        let non_empty = |k: &str| env(k).filter(|v| !v.is_empty());
        let endpoint = match generation {
            // terraform 1.6+'s own order (internal/backend/remote-state/s3/backend.go), then the
            // SDK's for what is left: the SDK-wide variable, then the profile (a `services` section
            // before its `endpoint_url`), both off with `ignore_configured_endpoint_urls`.
            Generation::Current => {
                let ignore = profile.ignore_configured_endpoint_urls
                    || non_empty("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
                        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
                // terraform's `retrieveArgument` stops at the first attribute that is set, even
                // to "": then neither `sts_endpoint` nor its variables apply, and the SDK resolves
                // as if no endpoint were given (from `AWS_ENDPOINT_URL_STS` on).
                let terraform_own = match b.sts_endpoint_attr() {
                    Some("") => None,
                    Some(e) => Some(e.to_owned()),
                    None => {
                        non_empty("AWS_ENDPOINT_URL_STS").or_else(|| non_empty("AWS_STS_ENDPOINT"))
                    }
                };
                terraform_own
                    .or_else(|| non_empty("AWS_ENDPOINT_URL_STS"))
                    .or_else(|| (!ignore).then(|| non_empty("AWS_ENDPOINT_URL")).flatten())
                    .or_else(|| (!ignore).then(|| profile.sts.clone()).flatten())
            }
            // ≤ 1.5: the attribute, whose schema default is `AWS_STS_ENDPOINT`; aws-sdk-go v1 of
            // that time knew no other endpoint setting.
            Generation::Legacy => b
                .sts_endpoint()
                .map(str::to_owned)
                .or_else(|| non_empty("AWS_STS_ENDPOINT")),
        };
        let env_flag =
            |name: &str| non_empty(name).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let region = b
            .sts_region()
            .map(str::to_owned)
            .or_else(|| non_empty("AWS_REGION"))
            .or_else(|| non_empty("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned());
        // `custom_ca_bundle = ""` stops terraform's own search, but the SDK then reads
        // AWS_CA_BUNDLE itself: the same as unset.
        let ca_bundle = b
            .string("custom_ca_bundle")
            .map(str::to_owned)
            .or_else(|| non_empty("AWS_CA_BUNDLE"))
            .map(|p| expand_home(&p, &env));
        // aws-sdk-go-base takes a set proxy attribute even when empty ("no proxy", over the
        // variable), but an empty `no_proxy` as unset (`aws::proxy`).
        let (http, https, no_proxy) = (
            b.value("http_proxy"),
            b.value("https_proxy"),
            b.string("no_proxy"),
        );
        let proxy = if http.is_none() && https.is_none() && no_proxy.is_none() {
            Proxy::FromEnv
        } else {
            Proxy::Explicit {
                http: http.map(str::to_owned),
                https: https.map(str::to_owned),
                no_proxy: no_proxy.map(str::to_owned),
            }
        };
        Ok(Target {
            endpoint,
            region,
            ca_bundle,
            proxy,
            use_fips: b
                .bool_attr("use_fips_endpoint")
                .unwrap_or_else(|| env_flag("AWS_USE_FIPS_ENDPOINT")),
            use_dual_stack: b
                .bool_attr("use_dualstack_endpoint")
                .unwrap_or_else(|| env_flag("AWS_USE_DUALSTACK_ENDPOINT")),
            timeout,
            generation,
        })
    }
}

/// One async runtime and one HTTPS client for all the checks of a run: building them (the TLS trust
/// store especially) is the expensive part, so the second check reuses the first one's.
pub struct Session {
    runtime: tokio::runtime::Runtime,
    http: SharedHttpClient,
    target: Target,
}

impl Session {
    /// `Err` says why no check can be made (e.g. an unreadable CA bundle): no verdict.
    pub fn new(target: Target) -> Result<Session, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("could not start the async runtime: {e}"))?;
        let http = contain(|| http_client(&target)).map_err(|p| p.to_string())??;
        Ok(Session {
            runtime,
            http,
            target,
        })
    }

    /// Checks the saved static key with exactly those credentials, by `deadline` (the root's check
    /// shares one: `credentials::s3`). Like every call into the SDK, it runs inside the panic
    /// boundary: a panic there is no verdict, not an abort.
    pub fn check_static(&self, creds: &StaticCredentials, deadline: Instant) -> Verdict {
        contain(|| {
            crate::boundary::injected("sts", || {
                format!("while checking {}", creds.secret_key.expose())
            });
            let creds = Credentials::new(
                creds.access_key.expose(),
                creds.secret_key.expose(),
                creds.token.as_ref().map(|t| t.expose().to_owned()),
                None,
                "tfshim-saved-backend",
            );
            let config = sts_config(&self.target, self.http.clone())
                .credentials_provider(creds)
                .build();
            self.runtime
                .block_on(by(deadline, call(aws_sdk_sts::Client::from_conf(config))))
        })
        .unwrap_or_else(|p| Verdict::unknown(p.to_string()))
    }

    /// Checks the credentials terraform would use without the saved key: aws-config's chain with
    /// the backend's profile settings applied, in the order of terraform's generation. Loading them
    /// and the first call end by `deadline`; asking again for a fresh key (`fresh.rs`) has a bound
    /// of its own, the window and one timeout more.
    pub fn check_ambient(&self, profiles: &ProfileSettings, deadline: Instant) -> Ambient {
        contain(|| self.ambient(profiles, deadline)).unwrap_or_else(|p| Ambient {
            verdict: Verdict::unknown(p.to_string()),
            source: "not checked".into(),
        })
    }

    fn ambient(&self, profiles: &ProfileSettings, deadline: Instant) -> Ambient {
        let target = &self.target;
        let verdict = self.runtime.block_on(async {
            let first = tokio::time::timeout_at(deadline.into(), async {
                let Some(provider) = self.ambient_provider(profiles).await else {
                    return Err(Verdict::Missing);
                };
                let creds = provider
                    .provide_credentials()
                    .await
                    .map_err(|_| Verdict::Missing)?;
                let config = sts_config(target, self.http.clone())
                    .credentials_provider(creds)
                    .build();
                let client = aws_sdk_sts::Client::from_conf(config);
                Ok((call(client.clone()).await, client))
            })
            .await;
            let (verdict, client) = match first {
                Err(_) => return Verdict::unknown("timeout"),
                Ok(Err(verdict)) => return verdict,
                Ok(Ok(answer)) => answer,
            };
            // A rejection may only mean the key is seconds old (`fresh.rs`): ask again, with
            // backoff, for the window; any other answer ends it. A slow STS cannot stretch it:
            // the window and one more timeout at most, the last answer standing.
            let window = crate::settings::get().fresh_key_wait;
            let mut verdict = verdict;
            let _ = tokio::time::timeout(
                window + target.timeout,
                Self::ask_again(&client, &mut verdict, window),
            )
            .await;
            verdict
        });
        Ambient {
            verdict,
            source: chain::source_from_files(profiles, |k| env::var(k).ok()),
        }
    }

    /// Asks again while `verdict` is a rejection, pausing as `fresh::pauses(window)` says.
    async fn ask_again(client: &aws_sdk_sts::Client, verdict: &mut Verdict, window: Duration) {
        for (i, pause) in fresh::pauses(window).into_iter().enumerate() {
            if !matches!(verdict, Verdict::Rejected { .. }) {
                break;
            }
            if i == 0 {
                log::say(&format!(
                    "the fallback credentials were rejected by STS too; a key created seconds \
                     ago can be, so asking again for up to {}s ({})",
                    window.as_secs_f64(),
                    fresh::VAR
                ));
            }
            tokio::time::sleep(pause).await;
            *verdict = call(client.clone()).await;
        }
    }

    /// The chain terraform would take its credentials from.
    async fn ambient_provider(
        &self,
        profiles: &ProfileSettings,
    ) -> Option<SharedCredentialsProvider> {
        let target = &self.target;
        let region = Region::new(target.region.clone());
        if let (true, Some(profile)) = (profiles.profile_first(), &profiles.profile) {
            // terraform 1.6+ with a backend `profile`: that profile, else container and instance
            // credentials — never AWS_ACCESS_KEY_ID (`chain::Generation::Current`).
            let conf = ProviderConfig::default()
                .with_http_client(self.http.clone())
                .with_region(Some(region))
                .with_retry_config(RetryConfig::disabled())
                .with_timeout_config(timeouts(target.timeout));
            let chain = CredentialsProviderChain::first_try(
                "Profile",
                ProfileFileCredentialsProvider::builder()
                    .configure(&conf)
                    .profile_name(profile)
                    .profile_files(profiles.env_config_files())
                    .build(),
            )
            .or_else(
                "EcsContainer",
                aws_config::ecs::EcsCredentialsProvider::builder()
                    .configure(&conf)
                    .build(),
            )
            .or_else(
                "Ec2InstanceMetadata",
                aws_config::imds::credentials::ImdsCredentialsProvider::builder()
                    .configure(&conf)
                    .build(),
            );
            return Some(SharedCredentialsProvider::new(chain));
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .http_client(self.http.clone())
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts(target.timeout))
            .profile_files(profiles.env_config_files());
        if let Some(profile) = &profiles.profile {
            loader = loader.profile_name(profile);
        }
        loader.load().await.credentials_provider()
    }
}

/// `f`'s verdict, or a timeout at `deadline`: the SDK's own timeouts are per call, the deadline is
/// the root's.
async fn by(deadline: Instant, f: impl std::future::Future<Output = Verdict>) -> Verdict {
    tokio::time::timeout_at(deadline.into(), f)
        .await
        .unwrap_or_else(|_| Verdict::unknown("timeout"))
}

fn timeouts(t: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(t)
        .read_timeout(t)
        .operation_attempt_timeout(t)
        .operation_timeout(t)
        .build()
}

fn sts_config(target: &Target, http: SharedHttpClient) -> aws_sdk_sts::config::Builder {
    let mut b = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(target.region.clone()))
        .http_client(http)
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts(target.timeout))
        .use_fips(target.use_fips)
        .use_dual_stack(target.use_dual_stack);
    // The user agent says who asked, so STS logs (and the tests) can tell tfshim from terraform.
    if let Ok(name) = AppName::new("tfshim") {
        b = b.app_name(name);
    }
    if let Some(endpoint) = &target.endpoint {
        b = b.endpoint_url(host_in_lower_case(endpoint));
    }
    b
}

/// The endpoint with its host name in lower case, for the resolver: Go finds `LOCALHOST` in
/// `/etc/hosts` (its hosts lookup ignores case, as DNS does), musl's resolver does not, so the static
/// build could not reach an endpoint terraform reaches. The proxy choice is made before, on the
/// address as written (Go's rules compare it as written). Userinfo, path and query are kept. Pure.
fn host_in_lower_case(endpoint: &str) -> String {
    let Some(start) = endpoint.find("://").map(|i| i + 3) else {
        return endpoint.to_owned();
    };
    let end = endpoint[start..]
        .find(['/', '?', '#'])
        .map_or(endpoint.len(), |i| start + i);
    let host_start = endpoint[start..end]
        .rfind('@')
        .map_or(start, |i| start + i + 1);
    format!(
        "{}{}{}",
        &endpoint[..host_start],
        endpoint[host_start..end].to_ascii_lowercase(),
        &endpoint[end..]
    )
}

async fn call(client: aws_sdk_sts::Client) -> Verdict {
    match client.get_caller_identity().send().await {
        Ok(out) => Verdict::Valid {
            arn: out.arn().unwrap_or("unknown ARN").to_owned(),
        },
        Err(err) => classify(&failure_of(&err)),
    }
}

/// Gathers the facts of an SDK error for the pure classifier.
fn failure_of<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Failure {
    let kind = match err {
        SdkError::TimeoutError(_) => FailureKind::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => FailureKind::Timeout,
        SdkError::DispatchFailure(d) if d.is_io() => FailureKind::Network,
        SdkError::DispatchFailure(_) => FailureKind::Network,
        SdkError::ConstructionFailure(_) => FailureKind::Construction,
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => FailureKind::Response,
        _ => FailureKind::Other,
    };
    let raw = err.raw_response();
    Failure {
        kind,
        code: err.code().map(str::to_owned),
        message: err.message().map(str::to_owned),
        status: raw.map(|r| r.status().as_u16()),
        body: raw.and_then(|r| r.body().bytes()).map(<[u8]>::to_vec),
    }
}

/// One HTTPS client (rustls with ring, the only crypto stack in the binary) with the target's trust
/// store and proxy.
fn http_client(target: &Target) -> Result<SharedHttpClient, String> {
    let trust = match &target.ca_bundle {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read the CA bundle {}: {e}", path.display()))?;
            let (usable, skipped) = usable_certificates(&pem);
            if usable.is_empty() {
                return Err(format!(
                    "the CA bundle {} holds no usable certificate",
                    path.display()
                ));
            }
            if skipped > 0 {
                crate::log::debug(|| {
                    format!(
                        "CA bundle {}: {} certificates used, {skipped} blocks skipped",
                        path.display(),
                        usable.len()
                    )
                });
            }
            // Like terraform, the bundle replaces the system's roots (aws-sdk-go-v2 fills a new,
            // empty pool from it).
            usable
                .into_iter()
                .fold(TrustStore::empty(), |store, block| {
                    store.with_pem_certificate(block)
                })
        }
        None => TrustStore::default(),
    };
    let tls = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| format!("invalid TLS settings: {e}"))?;
    let proxy = proxy_config(target)?;
    Ok(
        aws_smithy_http_client::Builder::new().build_with_connector_fn(
            move |settings: Option<&HttpConnectorSettings>,
                  components: Option<&RuntimeComponents>| {
                let mut builder = Connector::builder();
                builder.set_connector_settings(settings.cloned());
                if let Some(c) = components {
                    builder.set_sleep_impl(c.sleep_impl());
                }
                builder
                    .proxy_config(proxy.clone())
                    .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                    .tls_context(tls.clone())
                    .build()
            },
        ),
    )
}

/// The certificates of a CA bundle that can serve as trust anchors, each as its own PEM block, and
/// how many `CERTIFICATE` blocks were skipped. Read the way terraform reads it (Go's
/// `x509.CertPool.AppendCertsFromPEM`, docs/ca-bundle.md): a block that does not decode or does not
/// parse is skipped and the rest are kept; terraform fails only when none is left. The HTTP client
/// instead panics on the first bad block (`expect("valid PEM certificate")` in
/// aws-smithy-http-client's rustls provider), so only blocks that pass the same check it makes
/// (`RootCertStore::add`) are handed to it. Pure.
pub fn usable_certificates(pem: &[u8]) -> (Vec<Vec<u8>>, usize) {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let (mut usable, mut skipped) = (Vec::new(), 0);
    let mut rest = pem;
    while let Some(start) = find(rest, BEGIN) {
        rest = &rest[start..];
        let Some(end) = find(rest, END) else {
            skipped += 1;
            break;
        };
        // A block whose END line is missing: start over at the next BEGIN, as Go's decoder does.
        if let Some(next) = find(&rest[BEGIN.len()..end], BEGIN) {
            skipped += 1;
            rest = &rest[BEGIN.len() + next..];
            continue;
        }
        let block = &rest[..end + END.len()];
        rest = &rest[end + END.len()..];
        let anchor = CertificateDer::from_pem_slice(block)
            .ok()
            .filter(|der| rustls::RootCertStore::empty().add(der.clone()).is_ok());
        match anchor {
            Some(_) => usable.push(block.to_vec()),
            None => skipped += 1,
        }
    }
    (usable, skipped)
}

/// The proxy terraform would use for this target's STS URL, by Go's rules (`proxy.rs`): never for
/// loopback, `NO_PROXY` honoured, the backend's attributes over the variables.
fn proxy_config(target: &Target) -> Result<ProxyConfig, String> {
    let (http, https, no_proxy) = match &target.proxy {
        Proxy::FromEnv => (None, None, None),
        Proxy::Explicit {
            http,
            https,
            no_proxy,
        } => (http.as_deref(), https.as_deref(), no_proxy.as_deref()),
    };
    let settings = ProxySettings::resolve(|k| env::var(k).ok(), http, https, no_proxy);
    let url = target
        .endpoint
        .clone()
        .unwrap_or_else(|| format!("https://sts.{}.amazonaws.com", target.region));
    match settings.proxy_for(&url)? {
        Some(proxy) => ProxyConfig::all(proxy.as_str())
            .map_err(|e| format!("invalid proxy setting for STS: {e}")),
        None => Ok(ProxyConfig::disabled()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_host_is_resolved_in_lower_case() {
        for (given, want) in [
            ("http://LOCALHOST:4566", "http://localhost:4566"),
            (
                "https://Sts.Example.COM/Path/X?Q=A",
                "https://sts.example.com/Path/X?Q=A",
            ),
            ("http://User:PW@HOST:1/", "http://User:PW@host:1/"),
            ("http://[::FFFF:127.0.0.1]:9", "http://[::ffff:127.0.0.1]:9"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(host_in_lower_case(given), want);
        }
    }

    #[test]
    fn debug_hides_what_an_endpoint_url_may_carry() {
        let t = Target {
            endpoint: Some(
                "https://me:pw-secret@sts.example/?X-Amz-Security-Token=tok-secret".into(),
            ),
            region: "us-east-1".into(),
            ca_bundle: None,
            proxy: Proxy::FromEnv,
            use_fips: false,
            use_dual_stack: false,
            timeout: Duration::from_secs(5),
            generation: Generation::Current,
        };
        let shown = format!("{t:?}");
        assert!(shown.contains("sts.example"), "{shown}");
        assert!(
            !shown.contains("pw-secret") && !shown.contains("tok-secret"),
            "{shown}"
        );
    }
    use crate::backends::saved::testing::{env_of, s3 as backend};

    #[test]
    fn endpoint_and_region_precedence() {
        let t = Duration::from_secs(1);
        let env = env_of(&[
            ("AWS_ENDPOINT_URL_STS", "http://env-sts"),
            ("AWS_REGION", "ap-south-1"),
        ]);
        let b = backend(
            r#"{"endpoints":{"sts":"http://new"},"sts_endpoint":"http://old","region":"eu-west-1","sts_region":"us-west-2"}"#,
        );
        let target = Target::from_backend(
            &b,
            &env,
            Generation::Current,
            &ProfileEndpoint::default(),
            t,
        )
        .unwrap();
        assert_eq!(target.endpoint.as_deref(), Some("http://new"));
        assert_eq!(target.region, "us-west-2");
        let b = backend(r#"{"sts_endpoint":"http://old","region":"eu-west-1"}"#);
        let target = Target::from_backend(
            &b,
            &env,
            Generation::Current,
            &ProfileEndpoint::default(),
            t,
        )
        .unwrap();
        assert_eq!(target.endpoint.as_deref(), Some("http://old"));
        assert_eq!(target.region, "eu-west-1");
        let b = backend(r#"{"endpoints":{"sts":null}}"#);
        let target = Target::from_backend(
            &b,
            &env,
            Generation::Current,
            &ProfileEndpoint::default(),
            t,
        )
        .unwrap();
        assert_eq!(target.endpoint.as_deref(), Some("http://env-sts"));
        assert_eq!(target.region, "ap-south-1");
        let target = Target::from_backend(
            &b,
            env_of(&[]),
            Generation::Current,
            &ProfileEndpoint::default(),
            t,
        )
        .unwrap();
        assert_eq!(target.endpoint, None);
        assert_eq!(target.region, "us-east-1");
        // The deprecated variable still counts, after the new one.
        let old_env = env_of(&[
            ("AWS_STS_ENDPOINT", "http://deprecated"),
            ("AWS_ENDPOINT_URL", "http://all"),
        ]);
        let target = Target::from_backend(
            &b,
            &old_env,
            Generation::Current,
            &ProfileEndpoint::default(),
            t,
        )
        .unwrap();
        assert_eq!(target.endpoint.as_deref(), Some("http://deprecated"));
    }

    #[test]
    fn endpoints_from_the_config_files_and_by_generation() {
        let t = Duration::from_secs(1);
        let none = backend("{}");
        let profile = ProfileEndpoint {
            sts: Some("http://from-profile".into()),
            ignore_configured_endpoint_urls: false,
        };
        let at =
            |b: &SavedBackend, env: &[(&'static str, &'static str)], g, p: &ProfileEndpoint| {
                let env: &'static [(&'static str, &'static str)] =
                    Box::leak(env.to_vec().into_boxed_slice());
                Target::from_backend(b, env_of(env), g, p, t)
                    .unwrap()
                    .endpoint
            };
        let current = Generation::Current;
        // The profile comes after every variable terraform or the SDK reads first…
        assert_eq!(
            at(&none, &[], current, &profile).as_deref(),
            Some("http://from-profile")
        );
        assert_eq!(
            at(
                &none,
                &[("AWS_ENDPOINT_URL", "http://all")],
                current,
                &profile
            )
            .as_deref(),
            Some("http://all")
        );
        let sts_only = backend(r#"{"endpoints":{"sts":"http://attr"}}"#);
        assert_eq!(
            at(&sts_only, &[], current, &profile).as_deref(),
            Some("http://attr")
        );
        // …and `ignore_configured_endpoint_urls` turns off the SDK's sources, not terraform's own.
        let ignoring = ProfileEndpoint {
            ignore_configured_endpoint_urls: true,
            ..profile.clone()
        };
        assert_eq!(
            at(
                &none,
                &[("AWS_ENDPOINT_URL", "http://all")],
                current,
                &ignoring
            ),
            None
        );
        assert_eq!(
            at(
                &none,
                &[("AWS_ENDPOINT_URL_STS", "http://sts")],
                current,
                &ignoring
            )
            .as_deref(),
            Some("http://sts")
        );
        assert_eq!(
            at(
                &none,
                &[("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")],
                current,
                &profile
            ),
            None
        );
        // Terraform ≤ 1.5 knows only the attribute and AWS_STS_ENDPOINT.
        let legacy = Generation::Legacy;
        let env = [
            ("AWS_ENDPOINT_URL_STS", "http://new-var"),
            ("AWS_ENDPOINT_URL", "http://all"),
        ];
        assert_eq!(at(&none, &env, legacy, &profile), None);
        assert_eq!(
            at(
                &none,
                &[("AWS_STS_ENDPOINT", "http://old-var")],
                legacy,
                &profile
            )
            .as_deref(),
            Some("http://old-var")
        );
        let flat = backend(r#"{"sts_endpoint":"http://flat"}"#);
        assert_eq!(
            at(&flat, &env, legacy, &profile).as_deref(),
            Some("http://flat")
        );
    }

    #[test]
    fn fips_and_dual_stack_from_attributes_then_environment() {
        let t = Duration::from_secs(1);
        let env = env_of(&[
            ("AWS_USE_FIPS_ENDPOINT", "true"),
            ("AWS_USE_DUALSTACK_ENDPOINT", "true"),
        ]);
        let target = Target::from_backend(
            &backend("{}"),
            &env,
            Generation::Current,
            &ProfileEndpoint::default(),
            t,
        )
        .unwrap();
        assert!(target.use_fips && target.use_dual_stack);
        let b = backend(r#"{"use_fips_endpoint":false,"use_dualstack_endpoint":null}"#);
        let target = Target::from_backend(
            &b,
            &env,
            Generation::Current,
            &ProfileEndpoint::default(),
            t,
        )
        .unwrap();
        assert!(!target.use_fips && target.use_dual_stack);
        let target = Target::from_backend(
            &backend("{}"),
            env_of(&[]),
            Generation::Current,
            &ProfileEndpoint::default(),
            t,
        )
        .unwrap();
        assert!(!target.use_fips && !target.use_dual_stack);
    }

    #[test]
    fn tls_and_proxy_settings() {
        let t = Duration::from_secs(1);
        let env = env_of(&[("HOME", "/home/u"), ("AWS_CA_BUNDLE", "/etc/env.pem")]);
        let b = backend(
            r#"{"custom_ca_bundle":"~/ca.pem","https_proxy":"http://proxy:3128","no_proxy":"localhost"}"#,
        );
        let target = Target::from_backend(
            &b,
            &env,
            Generation::Current,
            &ProfileEndpoint::default(),
            t,
        )
        .unwrap();
        assert_eq!(target.ca_bundle, Some(PathBuf::from("/home/u/ca.pem")));
        assert_eq!(
            target.proxy,
            Proxy::Explicit {
                http: None,
                https: Some("http://proxy:3128".into()),
                no_proxy: Some("localhost".into())
            }
        );
        let target = Target::from_backend(
            &backend("{}"),
            &env,
            Generation::Current,
            &ProfileEndpoint::default(),
            t,
        )
        .unwrap();
        assert_eq!(target.ca_bundle, Some(PathBuf::from("/etc/env.pem")));
        assert_eq!(target.proxy, Proxy::FromEnv);
        assert!(Target::from_backend(
            &backend(r#"{"insecure":true}"#),
            &env,
            Generation::Current,
            &ProfileEndpoint::default(),
            t
        )
        .is_err());
    }

    /// Issue #20, item 4: each S3 attribute's `""` read as terraform 1.11 reads it.
    #[test]
    fn empty_strings_as_terraform_reads_them() {
        let t = Duration::from_secs(1);
        let env = env_of(&[
            ("HTTPS_PROXY", "http://env-proxy:3128"),
            ("AWS_STS_ENDPOINT", "http://legacy-var"),
            ("AWS_REGION", "ap-south-1"),
            ("NO_PROXY", "a.com"),
        ]);
        let target = |config: &str| {
            Target::from_backend(
                &backend(config),
                &env,
                Generation::Current,
                &ProfileEndpoint::default(),
                t,
            )
            .unwrap()
        };
        // `https_proxy = ""` is "no proxy" (aws-sdk-go-base), not the variable.
        let tg = target(r#"{"https_proxy":""}"#);
        let settings = match &tg.proxy {
            Proxy::Explicit {
                http,
                https,
                no_proxy,
            } => {
                ProxySettings::resolve(&env, http.as_deref(), https.as_deref(), no_proxy.as_deref())
            }
            Proxy::FromEnv => panic!("an empty https_proxy was read as unset"),
        };
        assert_eq!(settings.proxy_for("https://sts.example"), Ok(None));
        // `no_proxy = ""` is unset: NO_PROXY applies.
        assert_eq!(target(r#"{"no_proxy":""}"#).proxy, Proxy::FromEnv);
        // A set `no_proxy` alone replaces NO_PROXY.
        assert_eq!(
            target(r#"{"no_proxy":"b.com"}"#).proxy,
            Proxy::Explicit {
                http: None,
                https: None,
                no_proxy: Some("b.com".into())
            }
        );
        // `endpoints.sts = ""` stops terraform's own search: neither `sts_endpoint` nor
        // AWS_STS_ENDPOINT; `region = ""` is unset.
        let tg = target(r#"{"endpoints":{"sts":""},"sts_endpoint":"http://old","region":""}"#);
        assert_eq!(tg.endpoint, None);
        assert_eq!(tg.region, "ap-south-1");
        assert_eq!(
            target(r#"{"sts_endpoint":""}"#).endpoint,
            None,
            "an empty sts_endpoint"
        );
        assert_eq!(target("{}").endpoint.as_deref(), Some("http://legacy-var"));
    }

    /// ISRG Root X2 (a public root, from the system bundle).
    const ROOT: &str = "-----BEGIN CERTIFICATE-----\n\
MIICGzCCAaGgAwIBAgIQQdKd0XLq7qeAwSxs6S+HUjAKBggqhkjOPQQDAzBPMQsw\n\
CQYDVQQGEwJVUzEpMCcGA1UEChMgSW50ZXJuZXQgU2VjdXJpdHkgUmVzZWFyY2gg\n\
R3JvdXAxFTATBgNVBAMTDElTUkcgUm9vdCBYMjAeFw0yMDA5MDQwMDAwMDBaFw00\n\
MDA5MTcxNjAwMDBaME8xCzAJBgNVBAYTAlVTMSkwJwYDVQQKEyBJbnRlcm5ldCBT\n\
ZWN1cml0eSBSZXNlYXJjaCBHcm91cDEVMBMGA1UEAxMMSVNSRyBSb290IFgyMHYw\n\
EAYHKoZIzj0CAQYFK4EEACIDYgAEzZvVn4CDCuwJSvMWSj5cz3es3mcFDR0HttwW\n\
+1qLFNvicWDEukWVEYmO6gbf9yoWHKS5xcUy4APgHoIYOIvXRdgKam7mAHf7AlF9\n\
ItgKbppbd9/w+kHsOdx1ymgHDB/qo0IwQDAOBgNVHQ8BAf8EBAMCAQYwDwYDVR0T\n\
AQH/BAUwAwEB/zAdBgNVHQ4EFgQUfEKWrt5LSDv6kviejM9ti6lyN5UwCgYIKoZI\n\
zj0EAwMDaAAwZQIwe3lORlCEwkSHRhtFcP9Ymd70/aTSVaYgLXTWNLxBo1BfASdW\n\
tL4ndQavEi51mI38AjEAi/V3bNTIZargCyzuFJ0nN6T5U6VR5CmD1/iQMVtCnwr1\n\
/q4AaOeMSQ+2b1tbFfLn\n\
-----END CERTIFICATE-----\n\
";

    #[test]
    fn ca_bundles_are_read_leniently() {
        let bad_base64 =
            "-----BEGIN CERTIFICATE-----\nMIIB!!not*base64\n-----END CERTIFICATE-----\n";
        let not_a_cert = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        let no_end = "-----BEGIN CERTIFICATE-----\nMIIB\n";
        let key = "-----BEGIN PRIVATE KEY-----\naGVsbG8=\n-----END PRIVATE KEY-----\n";
        let bundle = format!("# comment\n{ROOT}{bad_base64}{not_a_cert}{no_end}{key}{ROOT}");
        let (usable, skipped) = usable_certificates(bundle.as_bytes());
        assert_eq!((usable.len(), skipped), (2, 3));
        for block in &usable {
            assert_eq!(block.as_slice(), ROOT.trim_end().as_bytes());
        }
        assert_eq!(usable_certificates(b"").0.len(), 0);
        let (usable, skipped) = usable_certificates(format!("{bad_base64}{not_a_cert}").as_bytes());
        assert_eq!((usable.len(), skipped), (0, 2));
        // An unterminated block at the end is skipped, not fatal.
        let (usable, skipped) = usable_certificates(format!("{ROOT}{no_end}").as_bytes());
        assert_eq!((usable.len(), skipped), (1, 1));
    }
}
