//! The summary that `ramsecrets check` prints (the "plan" of its help):
//! sources, output, and per secret its address, files, format and mode. It
//! shows names and paths, never values. ("Plan" in the code is the sidecar's
//! schedule, `engine/rotation/plan.rs`.)

use std::fmt;

use super::{Action, Config, Format};

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "sources:")?;
        for s in &self.sources {
            writeln!(f, "  {}: {}", s.name, s.kind.summary())?;
        }
        if let Some(inject) = &self.inject {
            write!(f, "{inject}")?;
            if self.secrets.is_empty() {
                return Ok(());
            }
        }
        match &self.output {
            Some(o) => {
                let owner = o
                    .owner
                    .map(|(u, g)| format!(", owner {u}:{g}"))
                    .unwrap_or_default();
                let disk = if o.allow_disk { ", disk allowed" } else { "" };
                writeln!(
                    f,
                    "output: {} (mode {:04o}{owner}{disk})",
                    o.dir.display(),
                    o.mode
                )?;
            }
            None => writeln!(
                f,
                "output: none: secrets are held in memory and served only by the proxy; no file is written"
            )?,
        }
        if self.mlock {
            writeln!(f, "memory: locked")?;
        }
        let r = &self.refresh;
        writeln!(
            f,
            "sidecar: poll every {}, renew at {:.0}% of a lease",
            super::duration::format(r.interval),
            r.renew_at * 100.0
        )?;
        if let Some(addr) = self.health {
            writeln!(f, "health: http://{addr}/healthz /readyz /metrics")?;
        }
        if let Some(p) = &self.proxy {
            writeln!(
                f,
                "proxy: http://{} (token file {}, at most {} connections)",
                p.listen,
                p.token_file.display(),
                p.max_connections
            )?;
        }
        writeln!(f, "secrets:")?;
        for s in &self.secrets {
            let what = s.address.summary();
            let source = &self.sources[s.source].name;
            let every = s
                .refresh
                .map(|d| format!(", every {}", super::duration::format(d)))
                .unwrap_or_default();
            let actions = actions(&s.on_change);
            if self.output.is_none() {
                writeln!(
                    f,
                    "  {}: {what} from {source} -> the proxy only, in memory (no file{every}{actions})",
                    s.name
                )?;
                continue;
            }
            if !s.write {
                let proxy = if self.proxy.is_some() {
                    " -> the proxy only"
                } else {
                    ""
                };
                writeln!(
                    f,
                    "  {}: {what} from {source}{proxy} (write: false)",
                    s.name
                )?;
                continue;
            }
            let how = match (s.address.field_files(), s.format, &s.key) {
                (Some(_), ..) => "pem".to_owned(),
                (_, Format::Raw, Some(k)) => format!("raw key {k}"),
                (_, format, _) => format.name().to_owned(),
            };
            writeln!(
                f,
                "  {}: {what} from {source} -> {} ({how}, mode {:04o}{every}{actions}){}",
                s.name,
                s.files().join(", "),
                s.mode,
                if self.proxy.is_some() {
                    ", and the proxy"
                } else {
                    ""
                }
            )?;
        }
        templates(self, f)
    }
}

/// `, N on_change action(s)`, or nothing.
pub(super) fn actions(list: &[Action]) -> String {
    match list.len() {
        0 => String::new(),
        n => format!(", {n} on_change action(s)"),
    }
}

/// The `templates:` part of the summary `check` prints.
fn templates(config: &Config, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if config.templates.is_empty() {
        return Ok(());
    }
    writeln!(f, "templates:")?;
    for t in &config.templates {
        let names: Vec<&str> = t
            .inputs
            .iter()
            .map(|&i| config.secrets[i].name.as_str())
            .collect();
        let dynamic = if t.dynamic {
            " (looked up by computed name: any secret)"
        } else {
            ""
        };
        let actions = actions(&t.on_change);
        writeln!(
            f,
            "  {} <- {}{dynamic} (mode {:04o}{actions})",
            t.file,
            names.join(", "),
            t.mode
        )?;
    }
    Ok(())
}
