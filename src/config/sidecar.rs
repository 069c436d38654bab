//! The sidecar's sections, as written and validated: `refresh:`, `health:`,
//! `exec:`, `proxy:`, and the `on_change` actions run after a file changed.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::blocks::{one_of, one_of_schema, DurationText, OneOf};
use super::{needs_one_of, Validator};

/// Refresh schedule of the sidecar.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRefresh {
    /// Poll interval of static secrets (default 5m), ±10% jitter.
    pub interval: Option<DurationText>,
    /// Fraction of a lease or certificate lifetime at which to renew (default 0.67).
    pub renew_at: Option<f64>,
}

/// Health endpoint.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// Address to serve /healthz, /readyz and /metrics on, e.g. 127.0.0.1:8099.
    pub listen: String,
}

/// The local credential proxy.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    /// Address to listen on (default 127.0.0.1:2773).
    pub listen: Option<String>,
    /// File holding the token every request must carry; created (32 random bytes, hex) if missing.
    pub token_file: PathBuf,
    /// Allow a non-loopback `listen` address.
    #[serde(default)]
    pub allow_remote: bool,
    /// Connections served at once; more get 429 (default 800).
    pub max_connections: Option<usize>,
}

/// `exec` mode settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExec {
    /// `restart` (default), or a signal name such as `HUP` to send instead.
    pub on_change: Option<String>,
    /// Time between TERM and KILL on restart and shutdown (default 10s).
    pub grace: Option<DurationText>,
}

/// One action after a change. Exactly one of `signal`, `exec` or `http`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = one_of_schema::<Self>)]
pub struct RawAction {
    /// Send a signal to a process.
    pub signal: Option<RawSignal>,
    /// Run a command (argv, no shell).
    pub exec: Option<Vec<String>>,
    /// POST to a URL.
    pub http: Option<RawHttp>,
    /// Time limit of `exec` and `http` (default 30s).
    pub timeout: Option<DurationText>,
}

one_of!(RawAction: signal, exec, http);

/// A signal to a process found by pid file or by name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = one_of_schema::<Self>)]
pub struct RawSignal {
    /// File holding the process id.
    pub pid_file: Option<PathBuf>,
    /// Process name (`/proc/*/comm`), in a shared PID namespace.
    pub process: Option<String>,
    /// Signal name, e.g. `HUP`.
    pub signal: String,
}

one_of!(RawSignal: pid_file, process);

/// An HTTP POST.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// URL to POST to.
    pub url: String,
}

/// The local credential proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    /// Listen address.
    pub listen: std::net::SocketAddr,
    /// The token file.
    pub token_file: PathBuf,
    /// Connections served at once.
    pub max_connections: usize,
}

/// Sidecar refresh schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Refresh {
    /// Poll interval of static secrets.
    pub interval: Duration,
    /// Fraction of a lease or certificate lifetime at which to renew, in (0, 1).
    pub renew_at: f64,
}

/// What `exec` mode does on a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildOnChange {
    /// TERM, KILL after the grace period, start again.
    Restart,
    /// Send this signal.
    Signal(Signal),
}

/// `exec` mode settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exec {
    /// What to do on a change.
    pub on_change: ChildOnChange,
    /// Time between TERM and KILL.
    pub grace: Duration,
}

/// A signal, by its number.
pub type Signal = rustix::process::Signal;

/// An `on_change` action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Signal a process.
    Signal {
        /// Which process.
        target: SignalTarget,
        /// Which signal.
        signal: Signal,
    },
    /// Run a command.
    Exec {
        /// argv.
        argv: Vec<String>,
        /// Time limit.
        timeout: Duration,
    },
    /// POST to a URL.
    Http {
        /// URL.
        url: reqwest::Url,
        /// Time limit.
        timeout: Duration,
    },
}

impl Action {
    /// The kind of the action, as metrics and logs name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Signal { .. } => "signal",
            Action::Exec { .. } => "exec",
            Action::Http { .. } => "http",
        }
    }
}

/// How a signal finds its process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignalTarget {
    /// The pid in this file.
    PidFile(PathBuf),
    /// Every process with this name.
    Process(String),
}

/// The signals a config may name, by their names without `SIG`.
const SIGNALS: [(&str, Signal); 9] = [
    ("HUP", Signal::HUP),
    ("INT", Signal::INT),
    ("QUIT", Signal::QUIT),
    ("USR1", Signal::USR1),
    ("USR2", Signal::USR2),
    ("TERM", Signal::TERM),
    ("KILL", Signal::KILL),
    ("WINCH", Signal::WINCH),
    ("ALRM", Signal::ALARM),
];

/// A signal by name, with or without `SIG`: HUP, INT, QUIT, USR1, USR2, TERM, KILL, WINCH, ALRM.
pub fn parse_signal(name: &str) -> Option<Signal> {
    let name = name.trim().to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    SIGNALS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// A signal's name as a user writes it, e.g. `HUP`.
pub fn signal_name(signal: Signal) -> &'static str {
    SIGNALS
        .iter()
        .find(|(_, s)| *s == signal)
        .map_or("a signal", |(n, _)| n)
}

impl Validator<'_> {
    pub(super) fn refresh(&mut self, r: Option<RawRefresh>) -> Refresh {
        let r = r.unwrap_or(RawRefresh {
            interval: None,
            renew_at: None,
        });
        let interval = self
            .duration(
                "refresh.interval",
                r.interval.as_deref(),
                Duration::from_secs(300),
            )
            .unwrap_or(Duration::from_secs(300));
        let renew_at = r.renew_at.unwrap_or(0.67);
        if !(renew_at > 0.0 && renew_at < 1.0) {
            self.problem(
                "refresh.renew_at",
                format!("{renew_at} is not a fraction between 0 and 1"),
            );
        }
        Refresh { interval, renew_at }
    }

    pub(super) fn proxy(&mut self, p: RawProxy) -> Option<Proxy> {
        let text = p.listen.as_deref().unwrap_or("127.0.0.1:2773");
        let Ok(listen) = text.parse::<std::net::SocketAddr>() else {
            self.problem(
                "proxy.listen",
                format!("`{text}` is not an address like 127.0.0.1:2773"),
            );
            return None;
        };
        if !listen.ip().is_loopback() && !p.allow_remote {
            self.problem(
                "proxy.listen",
                format!("{listen} is not a loopback address: other hosts could read secrets; set proxy.allow_remote: true to allow it"),
            );
            return None;
        }
        let max_connections = p.max_connections.unwrap_or(800);
        if max_connections == 0 {
            self.problem("proxy.max_connections", "must be at least 1");
            return None;
        }
        Some(Proxy {
            listen,
            token_file: self.path("proxy.token_file", p.token_file),
            max_connections,
        })
    }

    pub(super) fn exec(&mut self, e: Option<RawExec>) -> Exec {
        let e = e.unwrap_or(RawExec {
            on_change: None,
            grace: None,
        });
        let grace = self
            .duration("exec.grace", e.grace.as_deref(), Duration::from_secs(10))
            .unwrap_or(Duration::from_secs(10));
        let on_change = match e.on_change.as_deref() {
            None | Some("restart") => ChildOnChange::Restart,
            Some(name) => match parse_signal(name) {
                Some(sig) => ChildOnChange::Signal(sig),
                None => {
                    self.problem(
                        "exec.on_change",
                        format!("`{name}` is neither `restart` nor a signal name such as HUP"),
                    );
                    ChildOnChange::Restart
                }
            },
        };
        Exec { on_change, grace }
    }

    pub(super) fn action(&mut self, at: &str, a: RawAction) -> Option<Action> {
        let timeout = self.duration(
            &format!("{at}.timeout"),
            a.timeout.as_deref(),
            Duration::from_secs(30),
        )?;
        match (a.signal, a.exec, a.http) {
            (Some(s), None, None) => {
                let Some(signal) = parse_signal(&s.signal) else {
                    self.problem(
                        format!("{at}.signal.signal"),
                        format!("`{}` is not a signal name such as HUP", s.signal),
                    );
                    return None;
                };
                let target = match (s.pid_file, s.process) {
                    (Some(p), None) => {
                        SignalTarget::PidFile(self.path(&format!("{at}.signal.pid_file"), p))
                    }
                    (None, Some(n)) if !n.is_empty() => SignalTarget::Process(n),
                    _ => {
                        self.problem(format!("{at}.signal"), needs_one_of(RawSignal::KEYS));
                        return None;
                    }
                };
                Some(Action::Signal { target, signal })
            }
            (None, Some(argv), None) => {
                if argv.is_empty() || argv[0].is_empty() {
                    self.problem(
                        format!("{at}.exec"),
                        "needs a command: [\"/bin/cmd\", \"arg\", …]",
                    );
                    return None;
                }
                Some(Action::Exec { argv, timeout })
            }
            (None, None, Some(h)) => match reqwest::Url::parse(&h.url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {
                    Some(Action::Http { url, timeout })
                }
                _ => {
                    self.problem(
                        format!("{at}.http.url"),
                        format!("`{}` is not an http(s) URL", h.url),
                    );
                    None
                }
            },
            _ => {
                self.problem(at, needs_one_of(RawAction::KEYS));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    #[test]
    fn an_action_of_two_kinds_names_all_three() {
        let e = Config::parse(
            "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets:\n  - name: a\n    read: a/b\n    on_change: [ { exec: [/bin/true], http: { url: \"http://h/\" } } ]\n",
            Path::new("/cfg"),
        )
        .unwrap_err();
        assert_eq!(e[0].path, "secrets[0].on_change[0]", "{e:?}");
        assert_eq!(
            e[0].message,
            "needs exactly one of `signal`, `exec` or `http`"
        );
    }
}
