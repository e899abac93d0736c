//! tfshim's settings: every `TFSHIM_*` variable (and the colour conventions) read once, checked once,
//! and every invalid value said once, with the value used instead (issue #22). A bad setting never
//! blocks terraform: it is replaced by its default and the run goes on.
//!
//! [`Settings::parse`] is pure (it is given the environment as a function) and unit-tested;
//! [`load`] reads the process's environment once on the full path (the fast path, `proxy::fast`,
//! keeps its own minimal reads), says what it had to replace, and keeps the snapshot for the modules
//! deep down that need one value of it ([`get`]). The names are matched exactly (environment names
//! are case-sensitive on Unix); the enum values case-insensitively, as terraform's `TF_LOG` is.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// `TFSHIM_STS_TIMEOUT`: default and largest value, in seconds. The cap keeps a typo (`1e9`) from
/// hanging every run on an unreachable endpoint; it is said when applied.
pub const STS_TIMEOUT_DEFAULT: f64 = 5.0;
pub const STS_TIMEOUT_MAX: f64 = 300.0;
/// `TFSHIM_FRESH_KEY_WAIT`: default and largest value, in seconds (`0` turns the waiting off).
pub const FRESH_KEY_WAIT_DEFAULT: f64 = 10.0;
pub const FRESH_KEY_WAIT_MAX: f64 = 120.0;

/// The warning codes `TFSHIM_QUIET` may name: the security warnings a proxied run says
/// (`backends::warnings`).
pub const WARNING_CODES: &[&str] = &[
    "plaintext-keys",
    "secret-in-backend",
    "state-tracked-by-git",
    "data-dir-not-ignored",
];

/// Which security warnings a proxied run keeps to itself (`TFSHIM_QUIET`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Quiet {
    /// Every warning is said (unset, empty, `0`).
    #[default]
    None,
    /// No warning is said (`1`, `true`, `all`).
    All,
    /// These codes are not said (`plaintext-keys,state-tracked-by-git`).
    Codes(Vec<&'static str>),
}

impl Quiet {
    /// Whether the warning `code` is kept quiet.
    pub fn silences(&self, code: &str) -> bool {
        match self {
            Quiet::None => false,
            Quiet::All => true,
            Quiet::Codes(codes) => codes.contains(&code),
        }
    }
}

/// What the environment says about colour, as <https://no-color.org> and
/// <https://bixense.com/clicolors/> define it, plus terraform's `-no-color` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Color {
    /// `-no-color` among the arguments (terraform's flag; tfshim's own commands take it too).
    pub flag_off: bool,
    /// `NO_COLOR` non-empty.
    pub no_color: bool,
    /// `CLICOLOR_FORCE` or `FORCE_COLOR` set to something other than empty or `0`.
    pub force: bool,
    /// `CLICOLOR=0`.
    pub clicolor_off: bool,
    /// `TERM` is set and not `dumb` (on Windows: not `dumb`).
    pub term_ok: bool,
    /// `TERM=dumb`.
    pub dumb: bool,
}

impl Color {
    /// Whether to colour a stream that is (or is not) a terminal. The order is anstream's: the flag,
    /// then `NO_COLOR`, then forcing, then `CLICOLOR=0`, then a terminal whose `TERM` can colour.
    pub fn on(&self, is_terminal: bool) -> bool {
        if self.flag_off || self.no_color {
            return false;
        }
        if self.force {
            return true;
        }
        !self.clicolor_off && is_terminal && self.term_ok
    }

    /// Whether colour is turned off on purpose (`-no-color`, `NO_COLOR`, `CLICOLOR=0`, `TERM=dumb`,
    /// none of them overridden by forcing): terraform's own output in a repair is then run with
    /// `-no-color`. A missing `TERM` or a pipe is no such word (terraform colours there).
    pub fn refused(&self) -> bool {
        let c = Color {
            term_ok: !self.dumb,
            ..*self
        };
        !c.on(true)
    }
}

/// The snapshot. Paths and the recursion counter are kept as given (they are checked where used:
/// `locate` says what is wrong with a `TFSHIM_TERRAFORM`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub mode: Mode,
    /// `TFSHIM_ENGINE`; the name tfshim is invoked by wins over it (`Engine::choose`).
    pub engine: Engine,
    pub terraform: Option<OsString>,
    pub recursion_count: Option<OsString>,
    pub sts_timeout: Duration,
    pub fresh_key_wait: Duration,
    /// `TFSHIM_RETRY`: the reactive fallback.
    pub retry: bool,
    pub quiet: Quiet,
    /// `TFSHIM_REPORT`, when set and not empty.
    pub report: Option<PathBuf>,
    /// `TFSHIM_LOG=debug` (or `trace`).
    pub debug: bool,
    /// `GITHUB_ACTIONS=true`: warnings become workflow annotations.
    pub github_actions: bool,
    pub color: Color,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::parse(|_| None, false).0
    }
}

impl Settings {
    /// Reads every setting from `env`; returns the snapshot and one line per invalid value, saying
    /// the value used instead. `no_color_flag`: `-no-color` is among the arguments. Pure.
    pub fn parse(
        env: impl Fn(&str) -> Option<OsString>,
        no_color_flag: bool,
    ) -> (Settings, Vec<String>) {
        let mut notes = Vec::new();
        let text = |name: &str| env(name).map(|v| v.to_string_lossy().trim().to_owned());
        let non_empty = |name: &str| env(name).filter(|v| !v.is_empty());
        let set = |name: &str| text(name).filter(|v| !v.is_empty());

        let mode = match set("TFSHIM_MODE") {
            None => Mode::Fix,
            Some(v) => Mode::parse(Some(&v)).unwrap_or_else(|why| {
                notes.push(why);
                Mode::Off
            }),
        };
        let engine = match set("TFSHIM_ENGINE")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("terraform") => Engine::Terraform,
            Some("tofu") => Engine::Tofu,
            Some(_) => {
                notes.push(format!(
                    "TFSHIM_ENGINE={} is not terraform or tofu; using terraform",
                    text("TFSHIM_ENGINE").unwrap_or_default()
                ));
                Engine::Terraform
            }
        };
        let sts_timeout = seconds(
            "TFSHIM_STS_TIMEOUT",
            set("TFSHIM_STS_TIMEOUT"),
            STS_TIMEOUT_DEFAULT,
            false,
            STS_TIMEOUT_MAX,
            &mut notes,
        );
        let fresh_key_wait = seconds(
            "TFSHIM_FRESH_KEY_WAIT",
            set("TFSHIM_FRESH_KEY_WAIT"),
            FRESH_KEY_WAIT_DEFAULT,
            true,
            FRESH_KEY_WAIT_MAX,
            &mut notes,
        );
        let retry = match set("TFSHIM_RETRY") {
            None => true,
            Some(v) => switch(&v).unwrap_or_else(|| {
                notes.push(format!(
                    "TFSHIM_RETRY={v} is not 0 or 1; using 1 (the reactive fallback is on)"
                ));
                true
            }),
        };
        let quiet = match set("TFSHIM_QUIET") {
            None => Quiet::None,
            Some(v) => parse_quiet(&v, &mut notes),
        };
        let debug = match set("TFSHIM_LOG").map(|v| v.to_ascii_lowercase()).as_deref() {
            None => false,
            Some("debug" | "trace") => true,
            // terraform's `TF_LOG` levels below debug: tfshim has nothing more to say at them.
            Some("off" | "error" | "warn" | "info") => false,
            Some(_) => {
                notes.push(format!(
                    "TFSHIM_LOG={} is not debug, trace or off; using off",
                    text("TFSHIM_LOG").unwrap_or_default()
                ));
                false
            }
        };
        let flag =
            |name: &str| set(name).is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"));
        let color = Color {
            flag_off: no_color_flag,
            no_color: non_empty("NO_COLOR").is_some(),
            force: flag("CLICOLOR_FORCE") || flag("FORCE_COLOR"),
            clicolor_off: text("CLICOLOR").is_some_and(|v| v == "0"),
            dumb: env("TERM").is_some_and(|t| t == "dumb"),
            term_ok: match env("TERM") {
                Some(t) => t != "dumb",
                // Windows consoles set no TERM and colour all the same.
                None => cfg!(windows),
            },
        };
        let settings = Settings {
            mode,
            engine,
            terraform: non_empty("TFSHIM_TERRAFORM"),
            recursion_count: env("TFSHIM_RECURSION_COUNT"),
            sts_timeout,
            fresh_key_wait,
            retry,
            quiet,
            report: non_empty("TFSHIM_REPORT").map(PathBuf::from),
            debug,
            github_actions: text("GITHUB_ACTIONS").is_some_and(|v| v == "true"),
            color,
        };
        (settings, notes)
    }

    /// Whether to colour what is written to `stream` (a terminal or not).
    pub fn color_on(&self, stream: &impl std::io::IsTerminal) -> bool {
        self.color.on(stream.is_terminal())
    }
}

/// A number of seconds: finite, at least 0 (`zero_ok`) or above 0, at most `max`.
fn seconds(
    name: &str,
    value: Option<String>,
    default: f64,
    zero_ok: bool,
    max: f64,
    notes: &mut Vec<String>,
) -> Duration {
    let Some(v) = value else {
        return Duration::from_secs_f64(default);
    };
    let secs = match v.parse::<f64>() {
        Ok(s) if s.is_finite() && (s > 0.0 || (zero_ok && s == 0.0)) => s,
        Ok(s) if s.is_finite() => {
            let least = if zero_ok { "0 or more" } else { "more than 0" };
            notes.push(format!(
                "{name}={v} is not {least} seconds; using {}",
                show(default)
            ));
            default
        }
        _ => {
            notes.push(format!(
                "{name}={v} is not a number of seconds; using {}",
                show(default)
            ));
            default
        }
    };
    if secs > max {
        notes.push(format!(
            "{name}={v} is more than the {} seconds allowed; using {}",
            show(max),
            show(max)
        ));
        return Duration::from_secs_f64(max);
    }
    Duration::from_secs_f64(secs)
}

fn show(secs: f64) -> String {
    format!("{secs}")
}

/// A switch: `1`/`true`/`on`/`yes` or `0`/`false`/`off`/`no`, any case.
fn switch(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Some(true),
        "0" | "false" | "off" | "no" => Some(false),
        _ => None,
    }
}

/// `TFSHIM_QUIET`: a switch (`1`: every warning), `all`, or a comma list of warning codes.
fn parse_quiet(value: &str, notes: &mut Vec<String>) -> Quiet {
    if value.eq_ignore_ascii_case("all") {
        return Quiet::All;
    }
    if let Some(on) = switch(value) {
        return if on { Quiet::All } else { Quiet::None };
    }
    let (mut codes, mut unknown) = (Vec::new(), Vec::new());
    for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match WARNING_CODES.iter().find(|c| c.eq_ignore_ascii_case(word)) {
            Some(code) => codes.push(*code),
            None => unknown.push(word),
        }
    }
    if !unknown.is_empty() {
        let is = match unknown.len() {
            1 => "is not a warning code",
            _ => "are not warning codes",
        };
        notes.push(format!(
            "TFSHIM_QUIET={value}: {} {is} (those are {}; `1` silences all); ignoring {}",
            unknown.join(", "),
            WARNING_CODES.join(", "),
            if unknown.len() == 1 { "it" } else { "them" }
        ));
    }
    Quiet::Codes(codes)
}

/// `TFSHIM_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pure pass-through.
    Off,
    /// Diagnose and tell, change nothing.
    Warn,
    /// Diagnose and repair (the default).
    Fix,
}

impl Mode {
    /// Parses `TFSHIM_MODE` (any case); an unknown value is an error the caller reports (and then fails open).
    pub fn parse(value: Option<&str>) -> Result<Mode, String> {
        let given = value.map(str::trim).unwrap_or_default();
        match given.to_ascii_lowercase().as_str() {
            "" | "fix" => Ok(Mode::Fix),
            "warn" => Ok(Mode::Warn),
            "off" => Ok(Mode::Off),
            _ => Err(format!(
                "TFSHIM_MODE={given} is not one of off, warn, fix; using off (terraform runs \
                 unchanged)"
            )),
        }
    }
}

/// Which engine a proxy call stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Terraform,
    Tofu,
}

impl Engine {
    pub fn binary_name(self) -> &'static str {
        match self {
            Engine::Terraform => "terraform",
            Engine::Tofu => "tofu",
        }
    }

    /// The engine named by how tfshim was invoked (`terraform`, `tofu`), else `configured`
    /// (`TFSHIM_ENGINE`, checked by `settings`).
    pub fn choose(invoked_as: Option<&str>, configured: Engine) -> Engine {
        // File names are case-insensitive on Windows (and macOS): `Tofu.exe` is tofu.
        let named = |name: &str| invoked_as.is_some_and(|i| i.eq_ignore_ascii_case(name));
        if named("terraform") {
            return Engine::Terraform;
        }
        if named("tofu") {
            return Engine::Tofu;
        }
        configured
    }
}

/// The name to spell tfshim by in messages: `terraform` or `tofu` when invoked through such a link or
/// alias (any case: `Terraform.exe` on Windows), else `tfshim`. How tfshim was started, like the
/// environment, is read here: from the name `main` got in argv[0] ([`load`]), since a C `main`
/// under musl leaves std's own `args()` empty (the static build said `tfshim` when run as
/// `terraform`); else from std's `args()` (unit tests).
pub fn program() -> &'static str {
    let stem = match INVOKED_AS.get() {
        Some(name) => name.as_deref().map(str::to_ascii_lowercase),
        None => std::env::args_os().next().and_then(|a| {
            let stem = std::path::Path::new(&a)
                .file_stem()?
                .to_str()?
                .to_ascii_lowercase();
            Some(stem)
        }),
    };
    match stem.as_deref() {
        Some("terraform") => "terraform",
        Some("tofu") => "tofu",
        _ => "tfshim",
    }
}

/// The stem of argv[0] as `main` read it (`proxy::locate::invoked_as`).
static INVOKED_AS: OnceLock<Option<String>> = OnceLock::new();

static SNAPSHOT: OnceLock<Settings> = OnceLock::new();

/// Reads the environment once, says each invalid value once, and keeps the snapshot. `invoked_as`:
/// the stem of argv[0] (for [`program`]); `args`: the command line after the program name (for
/// `-no-color`). Later calls return the first snapshot.
pub fn load(invoked_as: Option<&str>, args: &[OsString]) -> &'static Settings {
    let _ = INVOKED_AS.set(invoked_as.map(str::to_owned));
    SNAPSHOT.get_or_init(|| {
        let flag = args
            .iter()
            .take_while(|a| *a != "--")
            .any(|a| a == OsStr::new("-no-color") || a == OsStr::new("--no-color"));
        let (mut settings, notes) = Settings::parse(|k| std::env::var_os(k), flag);
        // The crate's own reading of the same conventions, where it knows more than `parse`
        // (Windows consoles).
        settings.color.term_ok |= cfg!(windows) && anstyle_query::term_supports_color();
        settings.color.no_color |= anstyle_query::no_color();
        settings.color.force |= anstyle_query::clicolor_force();
        for note in notes {
            crate::log::say(&note);
        }
        settings
    })
}

/// The snapshot [`load`] took; read now, silently, where no snapshot was taken (unit tests).
pub fn get() -> &'static Settings {
    SNAPSHOT.get_or_init(|| Settings::parse(|k| std::env::var_os(k), false).0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> (Settings, Vec<String>) {
        let vars: Vec<(String, OsString)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Settings::parse(
            |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            false,
        )
    }

    /// The setting and the one note (if any) for one variable.
    fn one(name: &str, value: &str) -> (Settings, Option<String>) {
        let (s, notes) = parse(&[(name, value)]);
        assert!(notes.len() <= 1, "{notes:?}");
        (s, notes.into_iter().next())
    }

    #[test]
    fn defaults_say_nothing() {
        let (s, notes) = parse(&[]);
        assert!(notes.is_empty());
        assert_eq!(s.mode, Mode::Fix);
        assert_eq!(s.engine, Engine::Terraform);
        assert_eq!(s.sts_timeout, Duration::from_secs(5));
        assert_eq!(s.fresh_key_wait, Duration::from_secs(10));
        assert!(s.retry && !s.debug && !s.github_actions);
        assert_eq!(s.quiet, Quiet::None);
        assert_eq!((s.report, s.terraform), (None, None));
        // Empty is unset, for every variable.
        for name in [
            "TFSHIM_MODE",
            "TFSHIM_ENGINE",
            "TFSHIM_STS_TIMEOUT",
            "TFSHIM_FRESH_KEY_WAIT",
            "TFSHIM_RETRY",
            "TFSHIM_QUIET",
            "TFSHIM_LOG",
            "TFSHIM_REPORT",
            "TFSHIM_TERRAFORM",
        ] {
            let (s, note) = one(name, "");
            assert_eq!((s, note), (parse(&[]).0, None), "{name}");
        }
    }

    #[test]
    fn mode() {
        for (v, m) in [
            ("fix", Mode::Fix),
            ("Warn", Mode::Warn),
            (" OFF ", Mode::Off),
        ] {
            assert_eq!(one("TFSHIM_MODE", v), (parse(&[]).0.with_mode(m), None));
        }
        let (s, note) = one("TFSHIM_MODE", "Repair");
        assert_eq!(s.mode, Mode::Off);
        assert_eq!(
            note.as_deref(),
            Some("TFSHIM_MODE=Repair is not one of off, warn, fix; using off (terraform runs unchanged)")
        );
    }

    impl Settings {
        fn with_mode(mut self, mode: Mode) -> Settings {
            self.mode = mode;
            self
        }
    }

    #[test]
    fn engine() {
        assert_eq!(
            one("TFSHIM_ENGINE", "Terraform").0.engine,
            Engine::Terraform
        );
        assert_eq!(one("TFSHIM_ENGINE", "TOFU"), {
            let mut s = parse(&[]).0;
            s.engine = Engine::Tofu;
            (s, None)
        });
        let (s, note) = one("TFSHIM_ENGINE", "pulumi");
        assert_eq!(s.engine, Engine::Terraform);
        assert_eq!(
            note.as_deref(),
            Some("TFSHIM_ENGINE=pulumi is not terraform or tofu; using terraform")
        );
    }

    #[test]
    fn sts_timeout() {
        let t = |v| one("TFSHIM_STS_TIMEOUT", v);
        assert_eq!(t("2.5"), {
            let mut s = parse(&[]).0;
            s.sts_timeout = Duration::from_millis(2500);
            (s, None)
        });
        assert_eq!(t("300").0.sts_timeout, Duration::from_secs(300));
        for bad in ["abc", "NaN", "inf"] {
            let (s, note) = t(bad);
            assert_eq!(s.sts_timeout, Duration::from_secs(5), "{bad}");
            assert_eq!(
                note.unwrap(),
                format!("TFSHIM_STS_TIMEOUT={bad} is not a number of seconds; using 5")
            );
        }
        for low in ["0", "-1"] {
            let (s, note) = t(low);
            assert_eq!(s.sts_timeout, Duration::from_secs(5), "{low}");
            assert_eq!(
                note.unwrap(),
                format!("TFSHIM_STS_TIMEOUT={low} is not more than 0 seconds; using 5")
            );
        }
        let (s, note) = t("1e9");
        assert_eq!(s.sts_timeout, Duration::from_secs(300));
        assert_eq!(
            note.unwrap(),
            "TFSHIM_STS_TIMEOUT=1e9 is more than the 300 seconds allowed; using 300"
        );
    }

    #[test]
    fn fresh_key_wait() {
        let t = |v| one("TFSHIM_FRESH_KEY_WAIT", v);
        assert_eq!(t("0"), {
            let mut s = parse(&[]).0;
            s.fresh_key_wait = Duration::ZERO;
            (s, None)
        });
        assert_eq!(t("2.5").0.fresh_key_wait, Duration::from_millis(2500));
        let (s, note) = t("abc");
        assert_eq!(s.fresh_key_wait, Duration::from_secs(10));
        assert_eq!(
            note.unwrap(),
            "TFSHIM_FRESH_KEY_WAIT=abc is not a number of seconds; using 10"
        );
        let (s, note) = t("-1");
        assert_eq!(s.fresh_key_wait, Duration::from_secs(10));
        assert!(note.unwrap().contains("is not 0 or more seconds"));
        let (s, note) = t("1e9");
        assert_eq!(s.fresh_key_wait, Duration::from_secs(120));
        assert!(note.unwrap().contains("using 120"));
    }

    #[test]
    fn retry() {
        for (v, on) in [
            ("0", false),
            ("False", false),
            ("off", false),
            ("1", true),
            ("YES", true),
        ] {
            let (s, note) = one("TFSHIM_RETRY", v);
            assert_eq!((s.retry, note), (on, None), "{v}");
        }
        let (s, note) = one("TFSHIM_RETRY", "abc");
        assert!(s.retry);
        assert_eq!(
            note.as_deref(),
            Some("TFSHIM_RETRY=abc is not 0 or 1; using 1 (the reactive fallback is on)")
        );
    }

    #[test]
    fn quiet() {
        for (v, q) in [
            ("0", Quiet::None),
            ("1", Quiet::All),
            ("ALL", Quiet::All),
            ("true", Quiet::All),
        ] {
            assert_eq!(one("TFSHIM_QUIET", v), {
                let mut s = parse(&[]).0;
                s.quiet = q;
                (s, None)
            });
        }
        let (s, note) = one("TFSHIM_QUIET", "Plaintext-Keys, state-tracked-by-git");
        assert_eq!(note, None);
        assert!(s.quiet.silences("plaintext-keys"));
        assert!(s.quiet.silences("state-tracked-by-git"));
        assert!(!s.quiet.silences("data-dir-not-ignored"));
        let (s, note) = one("TFSHIM_QUIET", "plaintext-keys,nonsense");
        assert!(s.quiet.silences("plaintext-keys"));
        assert!(!s.quiet.silences("secret-in-backend"));
        assert!(note
            .unwrap()
            .starts_with("TFSHIM_QUIET=plaintext-keys,nonsense: nonsense is not a warning code"));
        let (_, note) = one("TFSHIM_QUIET", "a,b");
        assert!(note.unwrap().contains(": a, b are not warning codes"));
    }

    #[test]
    fn log() {
        for (v, debug) in [
            ("debug", true),
            ("TRACE", true),
            ("Info", false),
            ("off", false),
        ] {
            let (s, note) = one("TFSHIM_LOG", v);
            assert_eq!((s.debug, note), (debug, None), "{v}");
        }
        let (s, note) = one("TFSHIM_LOG", "verbose");
        assert!(!s.debug);
        assert_eq!(
            note.as_deref(),
            Some("TFSHIM_LOG=verbose is not debug, trace or off; using off")
        );
    }

    #[test]
    fn paths_and_flags() {
        let (s, notes) = parse(&[
            ("TFSHIM_REPORT", "r.json"),
            ("TFSHIM_TERRAFORM", "/usr/bin/terraform"),
            ("TFSHIM_RECURSION_COUNT", "3"),
            ("GITHUB_ACTIONS", "true"),
        ]);
        assert!(notes.is_empty());
        assert_eq!(s.report, Some(PathBuf::from("r.json")));
        assert_eq!(s.terraform, Some(OsString::from("/usr/bin/terraform")));
        assert_eq!(s.recursion_count, Some(OsString::from("3")));
        assert!(s.github_actions);
        assert!(!one("GITHUB_ACTIONS", "false").0.github_actions);
    }

    #[test]
    fn color() {
        let c = |vars: &[(&str, &str)]| parse(vars).0.color;
        let tty = [("TERM", "xterm-256color")];
        assert!(c(&tty).on(true));
        assert!(!c(&tty).on(false), "not a terminal");
        assert!(!c(&[("TERM", "dumb")]).on(true));
        assert!(!c(&[("TERM", "xterm"), ("NO_COLOR", "1")]).on(true));
        assert!(
            c(&[("TERM", "xterm"), ("NO_COLOR", "")]).on(true),
            "empty NO_COLOR"
        );
        assert!(!c(&[("TERM", "xterm"), ("CLICOLOR", "0")]).on(true));
        for force in ["CLICOLOR_FORCE", "FORCE_COLOR"] {
            assert!(c(&[(force, "1")]).on(false), "{force}");
            assert!(c(&[(force, "1"), ("TERM", "dumb")]).on(false), "{force}");
            assert!(!c(&[(force, "0")]).on(false), "{force}=0");
            // NO_COLOR wins over forcing, as in anstream.
            assert!(!c(&[(force, "1"), ("NO_COLOR", "1")]).on(true), "{force}");
        }
        let mut flagged = c(&[("CLICOLOR_FORCE", "1"), ("TERM", "xterm")]);
        flagged.flag_off = true;
        assert!(!flagged.on(true), "-no-color wins over everything");
        // What turns a repair's terraform colour off: words against colour, not a missing TERM.
        assert!(!c(&[]).refused());
        assert!(c(&[("TERM", "dumb")]).refused());
        assert!(c(&[("NO_COLOR", "1")]).refused());
        assert!(!c(&[("TERM", "dumb"), ("FORCE_COLOR", "1")]).refused());
        assert!(flagged.refused());
    }

    /// The README's Variables table is the code's: every `TFSHIM_*` name the sources use has a row,
    /// and the rows give this module's defaults, limits and warning codes.
    #[test]
    fn readme_variables_table_matches() {
        let readme = std::fs::read_to_string("README.md").unwrap();
        let start = readme.find("## Variables").unwrap();
        let end = start + readme[start..].find("\n## Exit codes").unwrap();
        let section = &readme[start..end];
        let row = |name: &str| {
            section
                .lines()
                .find(|l| l.starts_with(&format!("| `{name}` |")))
                .unwrap_or_else(|| panic!("no README row for {name}"))
                .to_owned()
        };
        let mut names = Vec::new();
        let mut files = vec![std::path::PathBuf::from("src")];
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, _) in text.match_indices("TFSHIM_") {
                let name: String = text[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                // The version constant, not a variable.
                if name != "TFSHIM_VERSION"
                    && name.len() > "TFSHIM_".len()
                    && !names.contains(&name)
                {
                    names.push(name);
                }
            }
        }
        assert!(names.len() > 10, "{names:?}");
        for name in &names {
            assert!(
                section.contains(&format!("`{name}`")),
                "{name} is not in the README's Variables"
            );
        }
        let sts = row("TFSHIM_STS_TIMEOUT");
        assert!(sts.starts_with(&format!(
            "| `TFSHIM_STS_TIMEOUT` | `{STS_TIMEOUT_DEFAULT}` |"
        )));
        assert!(sts.contains(&format!("at most {STS_TIMEOUT_MAX}")), "{sts}");
        let fresh = row("TFSHIM_FRESH_KEY_WAIT");
        assert!(fresh.starts_with(&format!(
            "| `TFSHIM_FRESH_KEY_WAIT` | `{FRESH_KEY_WAIT_DEFAULT}` |"
        )));
        assert!(
            fresh.contains(&format!("0 to {FRESH_KEY_WAIT_MAX}")),
            "{fresh}"
        );
        let quiet = row("TFSHIM_QUIET");
        for code in WARNING_CODES {
            assert!(quiet.contains(&format!("`{code}`")), "{code}: {quiet}");
        }
        for name in [
            "TFSHIM_MODE",
            "TFSHIM_ENGINE",
            "TFSHIM_RETRY",
            "TFSHIM_LOG",
            "TFSHIM_QUIET",
        ] {
            assert!(
                row(name).contains(" said"),
                "{name}: the row does not say what an invalid value does"
            );
        }
    }
}
