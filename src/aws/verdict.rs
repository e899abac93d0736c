//! What an STS `GetCallerIdentity` answer says about the key that signed it.
//!
//! Only a definite rejection of the credentials justifies touching the saved backend. Everything that
//! is about the network, the clock, the service's health or anything unknown is *no verdict*, and
//! tfshim then runs terraform unchanged (fail open).
//!
//! The error code is read from the SDK and, when the SDK found none, from the raw body: real STS
//! answers `<ErrorResponse><Error><Code>…`, moto `<ErrorResponse><Errors><Error><Code>…`, and
//! aws-sdk-sts reads only the first shape (docs/terraform-backend.md, "STS error bodies").

use std::fmt;

/// Error codes with which STS rejects the credentials themselves.
pub const REJECTION_CODES: &[&str] = &[
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
];

/// The verdict on one set of credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// STS accepted them; the caller's ARN.
    Valid { arn: String },
    /// STS rejected them with this code.
    Rejected { code: String },
    /// No verdict could be reached; why, in a few words (`timeout`, `HTTP 503`, …).
    Unknown { reason: String },
    /// There were no credentials to check (the ambient chain found none).
    Missing,
}

impl Verdict {
    pub fn unknown(reason: impl Into<String>) -> Verdict {
        Verdict::Unknown {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Valid { arn } => write!(f, "valid ({arn})"),
            Verdict::Rejected { code } => write!(f, "rejected ({code})"),
            Verdict::Unknown { reason } => write!(f, "unverified ({reason})"),
            Verdict::Missing => write!(f, "none found"),
        }
    }
}

/// The kinds of failure the SDK distinguishes before any response is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A response came back (service or unparsed response error).
    Response,
    /// Connect or operation timeout.
    Timeout,
    /// Connection refused, DNS, TLS, reset…
    Network,
    /// The request could not be built or signed.
    Construction,
    Other,
}

/// The facts of one failed call, as gathered from the SDK error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    /// The code the SDK parsed, if any.
    pub code: Option<String>,
    /// The message the SDK parsed, if any (used only for the clock-skew check, never printed).
    pub message: Option<String>,
    pub status: Option<u16>,
    pub body: Option<Vec<u8>>,
}

/// Classifies a failed `GetCallerIdentity` call. Pure.
pub fn classify(failure: &Failure) -> Verdict {
    match failure.kind {
        FailureKind::Timeout => return Verdict::unknown("timeout"),
        FailureKind::Network => return Verdict::unknown("network error"),
        FailureKind::Construction => return Verdict::unknown("could not build the request"),
        FailureKind::Other => return Verdict::unknown("unexpected SDK error"),
        FailureKind::Response => {}
    }
    let body = failure.body.as_deref().map(String::from_utf8_lossy);
    let code = failure
        .code
        .clone()
        .filter(|c| !c.is_empty())
        .or_else(|| body.as_deref().and_then(|b| xml_field(b, "Code")));
    let message = failure
        .message
        .clone()
        .or_else(|| body.as_deref().and_then(|b| xml_field(b, "Message")))
        .unwrap_or_default();
    match (code, failure.status) {
        // A proxy's own answer (Proxy Authentication Required): STS never saw the key, whatever
        // the body says (issue #20, item 6).
        (_, Some(407)) => Verdict::unknown("the proxy asks for authentication (HTTP 407)"),
        // "Signature expired" / "not yet current" is clock skew, not a bad key.
        (Some(code), _) if code == "SignatureDoesNotMatch" && is_clock_message(&message) => {
            Verdict::unknown("clock skew: SignatureDoesNotMatch (Signature expired)")
        }
        (Some(code), _) if REJECTION_CODES.contains(&code.as_str()) => Verdict::Rejected { code },
        (Some(code), _) => Verdict::unknown(sanitize(&code)),
        (None, Some(status)) => Verdict::unknown(format!("HTTP {status} without an error code")),
        (None, None) => Verdict::unknown("an answer without an error code"),
    }
}

fn is_clock_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("signature expired") || m.contains("not yet current")
}

/// The text of the first `<name>…</name>` element; enough for STS's flat error documents.
fn xml_field(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = body.find(&open)? + open.len();
    let end = start + body[start..].find(&close)?;
    let value = body[start..end].trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// An error code is a short identifier; anything else from a server is not shown verbatim.
fn sanitize(code: &str) -> String {
    if code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
    {
        code.to_owned()
    } else {
        "an unrecognised error code".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL_STS: &str = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<Error><Type>Sender</Type><Code>InvalidClientTokenId</Code>
<Message>The security token included in the request is invalid.</Message></Error>
<RequestId>1234567890</RequestId></ErrorResponse>"#;

    const MOTO: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code>
<Message><![CDATA[The security token included in the request is invalid.]]></Message>
<RequestID>x</RequestID></Error></Errors></ErrorResponse>"#;

    fn response(code: Option<&str>, status: u16, body: &str) -> Failure {
        Failure {
            kind: FailureKind::Response,
            code: code.map(str::to_owned),
            message: None,
            status: Some(status),
            body: Some(body.as_bytes().to_vec()),
        }
    }

    fn rejected(code: &str) -> Verdict {
        Verdict::Rejected {
            code: code.to_owned(),
        }
    }

    #[test]
    fn both_xml_shapes_without_an_sdk_code() {
        assert_eq!(
            classify(&response(None, 403, REAL_STS)),
            rejected("InvalidClientTokenId")
        );
        assert_eq!(
            classify(&response(None, 403, MOTO)),
            rejected("InvalidClientTokenId")
        );
    }

    #[test]
    fn every_rejection_code() {
        for code in REJECTION_CODES {
            let body = REAL_STS.replace("InvalidClientTokenId", code);
            assert_eq!(classify(&response(Some(code), 403, &body)), rejected(code));
            assert_eq!(classify(&response(None, 403, &body)), rejected(code));
            let body = MOTO.replace("InvalidClientTokenId", code);
            assert_eq!(classify(&response(None, 400, &body)), rejected(code));
        }
    }

    #[test]
    fn not_a_verdict_on_the_key() {
        for code in [
            "RequestExpired",
            "Throttling",
            "ThrottlingException",
            "InternalFailure",
            "AccessDenied",
        ] {
            let v = classify(&response(Some(code), 400, ""));
            assert!(matches!(v, Verdict::Unknown { .. }), "{code}: {v:?}");
        }
        let skew = Failure {
            message: Some("Signature expired: 20200501T143723Z is now earlier than …".into()),
            ..response(Some("SignatureDoesNotMatch"), 403, "")
        };
        assert!(matches!(classify(&skew), Verdict::Unknown { .. }));
        assert_eq!(
            classify(&response(None, 503, "<html>Service Unavailable</html>")),
            Verdict::unknown("HTTP 503 without an error code")
        );
        assert_eq!(
            classify(&response(None, 403, "")),
            Verdict::unknown("HTTP 403 without an error code")
        );
        // A proxy's own 407 is no verdict, even with a rejection code in its body.
        assert_eq!(
            classify(&response(None, 407, REAL_STS)),
            Verdict::unknown("the proxy asks for authentication (HTTP 407)")
        );
        assert!(matches!(
            classify(&response(None, 500, "<Code><script>bad</script></Code>")),
            Verdict::Unknown { reason } if reason == "an unrecognised error code"
        ));
    }

    #[test]
    fn network_kinds() {
        for (kind, reason) in [
            (FailureKind::Timeout, "timeout"),
            (FailureKind::Network, "network error"),
            (FailureKind::Construction, "could not build the request"),
        ] {
            let f = Failure {
                kind,
                code: None,
                message: None,
                status: None,
                body: None,
            };
            assert_eq!(classify(&f), Verdict::unknown(reason));
        }
    }
}
