//! What in a saved backend is a secret: the attributes of each backend type that hold one, and URLs
//! that carry a password. The one definition the security warnings, the repair (which must never
//! write a secret to its settings file) and the redacting `Debug` prints all use. Pure.

/// The S3 attributes that carry the static credentials terraform saved (and that a repair removes).
pub const S3_CREDENTIAL_ATTRS: &[&str] = &["access_key", "secret_key", "token"];

/// The attributes that hold secrets, per backend type (`-backend-config` saves them in plain text in
/// the data dir). For `s3`, the credentials come first; the others are found at any depth
/// (`assume_role_with_web_identity.web_identity_token`).
const SECRET_ATTRS: &[(&str, &[&str])] = &[
    (
        "s3",
        &[
            "access_key",
            "secret_key",
            "token",
            "sse_customer_key",
            "web_identity_token",
        ],
    ),
    (
        "azurerm",
        &[
            "access_key",
            "sas_token",
            "client_secret",
            "client_certificate_password",
        ],
    ),
    ("gcs", &["credentials", "access_token", "encryption_key"]),
    ("http", &["password", "client_private_key_pem"]),
    ("consul", &["access_token"]),
    ("remote", &["token"]),
    ("cloud", &["token"]),
    ("cos", &["secret_key", "security_token"]),
    ("oss", &["secret_key", "security_token"]),
    ("kubernetes", &["token", "password", "client_key"]),
];

/// The secret attributes of backend type `kind` other than S3's static credentials (which have their
/// own warning and their own repair).
pub fn other_secret_attrs(kind: &str) -> impl Iterator<Item = &'static str> + '_ {
    SECRET_ATTRS
        .iter()
        .filter(move |(k, _)| *k == kind)
        .flat_map(|(_, attrs)| attrs.iter().copied())
        .filter(move |a| !(kind == "s3" && S3_CREDENTIAL_ATTRS.contains(a)))
}

/// The parts of `scheme://userinfo@rest`, when the URL has a userinfo part. The userinfo ends at the
/// last `@`: a password may hold an unescaped `@` or `/`, and taking too much for a secret is the
/// safe mistake. Also the forms a lenient URL parser accepts without `//` (`https:user:pw@host`,
/// `https:/user:pw@host`, backslashes), which must not slip past the check.
pub fn url_userinfo(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once(':')?;
    let is_scheme = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !is_scheme {
        return None;
    }
    let rest = rest.trim_start_matches(['/', '\\']);
    let (userinfo, host) = rest.rsplit_once('@')?;
    Some((scheme, userinfo, host))
}

/// Query parameters whose name says they carry a credential (`?private_token=…`, `?sig=…`).
fn query_has_secret(url: &str) -> bool {
    const SECRET_WORDS: &[&str] = &["token", "passw", "secret", "key", "sig", "auth", "cred"];
    url.split_once('?').is_some_and(|(_, query)| {
        query.split(['&', ';']).any(|pair| {
            let name = pair
                .split('=')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            SECRET_WORDS.iter().any(|w| name.contains(w))
        })
    })
}

/// A URL that carries a password (`user:password@`) or a query parameter named like a credential.
/// Never written to the repair's settings file. (A user name alone is shown redacted by
/// [`url_redacted`] but may be written: it is already in the saved file next to it.)
pub fn url_has_password(url: &str) -> bool {
    url_userinfo(url).is_some_and(|(_, userinfo, _)| userinfo.contains(':'))
        || query_has_secret(url)
}

/// `url` with its userinfo and query hidden (`http://…@proxy:3128`, `https://host/state?…`), for
/// output and `Debug` prints.
pub fn url_redacted(url: &str) -> String {
    let shown = match url_userinfo(url) {
        Some((scheme, _, host)) => format!("{scheme}://…@{host}"),
        None => url.to_owned(),
    };
    match shown.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo() {
        assert!(url_has_password("http://me:pw@proxy:3128"));
        assert!(url_has_password("http://me:p@ss/word@proxy:3128/x"));
        assert!(url_has_password("postgres://u:pw@db/name"));
        assert!(!url_has_password("https://a@b"));
        assert_eq!(
            url_redacted("https://glpat-abc@gitlab.example/s"),
            "https://…@gitlab.example/s"
        );
        assert!(!url_has_password("http://proxy:3128"));
        assert!(!url_has_password(
            "https://gitlab.example/api/v4/projects/1/terraform/state/x"
        ));
        // Forms without `//` that lenient parsers accept.
        assert!(url_has_password("https:user:pw@host/x"));
        assert!(url_has_password("https:/user:pw@host/x"));
        assert!(url_has_password("https:\\\\user:pw@host/x"));
        // Credentials in the query.
        assert!(url_has_password(
            "https://host/state?private_token=glpat-abc"
        ));
        assert!(url_has_password(
            "https://host/state?a=1&X-Amz-Signature=abc"
        ));
        assert!(!url_has_password("https://host/state?ref=main"));
        assert_eq!(url_redacted("https:user:pw@host/x"), "https://…@host/x");
        assert_eq!(
            url_redacted("https://host/state?private_token=glpat-abc"),
            "https://host/state?…"
        );
        assert_eq!(
            url_redacted("http://me:p@ss@proxy:3128"),
            "http://…@proxy:3128"
        );
        assert_eq!(url_redacted("http://proxy:3128"), "http://proxy:3128");
    }

    #[test]
    fn secret_attributes() {
        let s3: Vec<_> = other_secret_attrs("s3").collect();
        assert_eq!(s3, ["sse_customer_key", "web_identity_token"]);
        assert!(other_secret_attrs("azurerm").any(|a| a == "access_key"));
        assert_eq!(other_secret_attrs("local").count(), 0);
    }
}
