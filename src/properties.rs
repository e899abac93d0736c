//! Fuzzing, as property tests: every parser that reads something a user or another program wrote —
//! terraform's command line, `TF_CLI_ARGS`, the saved backend, a plan file, an STS answer, terraform's
//! stderr — must neither panic nor allocate without bound, whatever it is given.
//!
//! proptest runs on stable Rust and in the ordinary test run, so CI fuzzes every time for a bounded
//! number of cases (`TFSHIM_FUZZ_CASES`, default 2000 per target; raise it for a longer local run).

use std::ffi::OsString;
use std::path::PathBuf;

use proptest::prelude::*;

use crate::aws::verdict::{classify, Failure, FailureKind};
use crate::backends::saved::SavedBackend;
use crate::heal::decide::classify_command;
use crate::proxy::invocation::{parse_init_flags, Invocation};

fn config() -> ProptestConfig {
    let cases = std::env::var("TFSHIM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Words that steer the parsers into their interesting branches, mixed with arbitrary bytes.
fn arg() -> impl Strategy<Value = OsString> {
    let known = prop::sample::select(vec![
        "init",
        "plan",
        "apply",
        "state",
        "list",
        "workspace",
        "select",
        "-chdir=",
        "-chdir=x",
        "-version",
        "-v",
        "-help",
        "--",
        "-",
        "-backend-config",
        "-backend-config=a=b",
        "-backend-config=access_key=K",
        "-reconfigure",
        "-backend=false",
        "-var",
        "-var-file",
        "plan.out",
        "force-unlock",
        "show",
        "providers",
        "schema",
        "-migrate-state=false",
    ])
    .prop_map(OsString::from);
    #[cfg(unix)]
    let raw = prop::collection::vec(any::<u8>(), 0..24).prop_map(|b| {
        use std::os::unix::ffi::OsStringExt;
        OsString::from_vec(b)
    });
    #[cfg(not(unix))]
    let raw = ".{0,24}".prop_map(OsString::from);
    prop_oneof![3 => known, 1 => raw]
}

/// JSON-ish text built from the saved file's own vocabulary, so the parser gets past `from_slice`.
fn saved_text() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"version\"",
        "3",
        "4",
        "\"backend\"",
        "\"type\"",
        "\"s3\"",
        "\"config\"",
        "\"access_key\"",
        "\"secret_key\"",
        "\"AKIA0123456789ABCDEF\"",
        "null",
        "\"hash\"",
        "true",
        "\"endpoints\"",
        "\"sts\"",
        "\"\"",
        "-1",
        "1e400",
    ]);
    prop_oneof![
        prop::collection::vec(piece, 0..64).prop_map(|p| p.concat().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..256),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn command_lines_never_panic(args in prop::collection::vec(arg(), 0..12), env in ".{0,40}") {
        let inv = Invocation::parse(args.clone());
        prop_assert_eq!(&inv.args, &args, "arguments are kept verbatim");
        let effective = inv.effective_args(|_| Some(env.clone()));
        let _ = classify_command(&inv, &effective);
        let _ = parse_init_flags(&effective);
        let _ = inv.with_extra_args(&[OsString::from("-reconfigure")]);
        let _ = inv.data_dir(None);
    }

    #[test]
    fn saved_backends_never_panic(raw in saved_text()) {
        if let Ok(Some(b)) = SavedBackend::parse(PathBuf::from("t"), raw) {
            let _ = b.s3_static_credentials();
            let _ = b.sts_endpoint();
            let _ = b.sts_region();
            let _ = crate::heal::repair::preserved_settings(&b, crate::credentials::credential_attrs(&b.kind));
            let _ = crate::backends::warnings::backend_warnings(&b, None);
        }
    }

    #[test]
    fn plan_files_never_panic(raw in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = crate::backends::planfile::parse_tfplan(&raw);
    }

    #[test]
    fn sts_answers_never_panic(
        status in prop::option::of(100u16..600),
        code in prop::option::of(".{0,30}"),
        body in prop::option::of(prop::collection::vec(any::<u8>(), 0..300)),
    ) {
        let _ = classify(&Failure { kind: FailureKind::Response, code, message: None, status, body });
    }

    #[test]
    fn terraform_stderr_never_panics(text in ".{0,400}") {
        let _ = crate::proxy::reactive::is_rejected_key_failure(&text);
    }

    /// `-backend-config` files: arbitrary text, and text built from HCL's own pieces (so the parser
    /// gets past the first token), never panic.
    #[test]
    fn backend_config_files_never_panic(
        text in ".{0,300}",
        pieces in prop::collection::vec(prop::sample::select(vec![
            "a", " = ", "\"s\"", "${", "}", "{", "[", "]", ",", "<<EOT\n", "\nEOT\n", "<<-X\n",
            "\r\n", "\n", "#", "/*", "*/", "true", "null", "1.5e3", "x.y", "f(", ")", "%{", "\\",
        ]), 0..40),
    ) {
        let _ = crate::backends::config_file::parse_hcl(&text);
        let _ = crate::backends::config_file::parse_json(&text);
        let _ = crate::backends::config_file::parse_hcl(&pieces.concat());
    }
}

/// Secret hygiene: every type that holds or may hold a secret, printed with `{:?}` (as a log line, a
/// panic message or a future `dbg!` would), shows none of it.
#[test]
fn no_debug_print_shows_a_secret() {
    use crate::aws::sts::{Proxy, Target};
    use crate::backends::saved::{AccessKeyId, Secret, StaticCredentials};
    use crate::heal::decide::{CommandClass, Facts, InitChange, Mode, Saved};

    const KEY: &str = "AKIASECRETKEYID12345";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzzSECRET";
    const TOKEN: &str = "FwoGZXIvYXdzEPTOKENTOKEN";
    const PROXY_PASSWORD: &str = "proxy-pass-word";
    let text = format!(
        r#"{{"version":3,"backend":{{"type":"s3","config":{{"access_key":"{KEY}","secret_key":"{SECRET}","token":"{TOKEN}","bucket":"b"}},"hash":1}}}}"#
    );
    let saved = SavedBackend::parse(PathBuf::from("t"), text.into_bytes())
        .unwrap()
        .unwrap();
    let creds = saved.s3_static_credentials().unwrap();
    let args: Vec<OsString> = [
        "init".to_owned(),
        format!("-backend-config=access_key={KEY}"),
        format!("-backend-config=secret_key={SECRET}"),
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    let inv = Invocation::parse(args);
    let flags = parse_init_flags(&inv.effective_args(|_| None));
    let facts = Facts {
        mode: Mode::Fix,
        class: CommandClass::Init(flags.clone()),
        saved: Saved::StaticKey,
        init_change: InitChange::CredentialsOnly,
        saved_verdict: None,
        ambient_verdict: None,
        key_in_config: None,
    };
    let target = Target {
        endpoint: None,
        region: "us-east-1".into(),
        ca_bundle: None,
        proxy: Proxy::Explicit {
            http: None,
            https: Some(format!("http://user:{PROXY_PASSWORD}@proxy:3128")),
            no_proxy: None,
        },
        use_fips: false,
        use_dual_stack: false,
        timeout: std::time::Duration::from_secs(1),
        generation: Default::default(),
    };
    let plan = crate::backends::planfile::PlanBackend {
        kind: "s3".into(),
        config: saved.config.clone(),
    };
    let warnings = crate::backends::warnings::backend_warnings(&saved, None);
    // The merged -backend-config values of that init (flags only, so no file is read).
    let given = crate::backends::config_file::merge(&flags.config, std::path::Path::new("."))
        .expect("flags only");
    let printed = format!(
        "{saved:?} {creds:?} {:?} {:?} {:?} {inv:?} {flags:?} {facts:?} {target:?} {plan:?} {warnings:?} {given:?} {} {}",
        AccessKeyId::new(KEY),
        Secret::new(SECRET),
        StaticCredentials {
            access_key: AccessKeyId::new(KEY),
            secret_key: Secret::new(SECRET),
            token: Some(Secret::new(TOKEN)),
        },
        creds.access_key,
        creds.secret_key,
    );
    for secret in [KEY, SECRET, TOKEN, PROXY_PASSWORD] {
        assert!(!printed.contains(secret), "{secret} appears in: {printed}");
    }
    assert!(printed.contains("AKIA…2345"), "{printed}");
}
