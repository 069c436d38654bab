//! `check --online`: logs in with each source and checks, for every secret,
//! that the identity may read it, without writing a file and without minting
//! anything (see [`crate::source::Source::may_read`]: KV, AWS and file secrets
//! are read and dropped, Vault's dynamic credentials and certificates are
//! checked with `sys/capabilities-self`). Secrets of one address are checked
//! once. The result is a table (secret, source, address, status) whose worst
//! status is the exit code. It never holds a value past the check, and never
//! prints one.

use std::fmt;
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use tokio::time::Instant;

use crate::config::Config;
use crate::engine::fetch::{self, Limiter};
use crate::exit::{Exit, ExitCode};
use crate::source::{self, Source};

/// What was found for one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The identity may read it.
    Ok,
    /// The backend refused the login or the read (77).
    Denied(String),
    /// The path, secret or secrets engine does not exist (65).
    Missing(String),
    /// The backend did not answer, or failed (69).
    Unreachable(String),
    /// Anything else: a local setup problem (78) or bad data (65).
    Failed(Exit, String),
}

/// The longest detail a row shows, in characters.
const MAX_DETAIL: usize = 200;

/// A message as one table cell: its lines and indents joined by single
/// spaces (Vault's errors come as `1 error occurred:\n\t* …`), cut to
/// [`MAX_DETAIL`] characters.
fn one_line(message: &str) -> String {
    let joined = message.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(MAX_DETAIL) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

impl Status {
    fn from_error(e: &source::Error) -> Status {
        let message = one_line(&e.to_string());
        match e {
            source::Error::Denied { .. } => Status::Denied(message),
            source::Error::NotFound { .. } => Status::Missing(message),
            source::Error::Unavailable { .. } => Status::Unreachable(message),
            other => Status::Failed(other.exit(), message),
        }
    }

    /// The word in the table.
    fn word(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Denied(_) => "denied",
            Status::Missing(_) => "missing",
            Status::Unreachable(_) => "unreachable",
            Status::Failed(..) => "error",
        }
    }

    /// The exit code it stands for.
    pub fn exit(&self) -> Exit {
        match self {
            Status::Ok => Exit::Ok,
            Status::Denied(_) => Exit::NoPerm,
            Status::Missing(_) => Exit::Data,
            Status::Unreachable(_) => Exit::Unavailable,
            Status::Failed(exit, _) => *exit,
        }
    }

    fn detail(&self) -> &str {
        match self {
            Status::Ok => "",
            Status::Denied(m) | Status::Missing(m) | Status::Unreachable(m) => m,
            Status::Failed(_, m) => m,
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The secret's name.
    pub secret: String,
    /// Its source's name.
    pub source: String,
    /// What it reads, e.g. `kv secret/app/db`.
    pub address: String,
    /// What was found.
    pub status: Status,
}

/// The result of an online check, per secret in config order.
#[derive(Debug)]
pub struct Report {
    /// One row per secret.
    pub rows: Vec<Row>,
}

impl Report {
    /// The worst status's exit code (0 when every secret is readable).
    pub fn exit(&self) -> Exit {
        self.rows
            .iter()
            .map(|r| r.status.exit())
            .max()
            .unwrap_or(Exit::Ok)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = ["SECRET", "SOURCE", "ADDRESS", "STATUS"];
        let cells: Vec<[&str; 4]> = self
            .rows
            .iter()
            .map(|r| [&*r.secret, &*r.source, &*r.address, r.status.word()])
            .collect();
        let mut width = header.map(str::len);
        for row in &cells {
            for (w, c) in width.iter_mut().zip(row) {
                *w = (*w).max(c.len());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, row: &[&str; 4], detail: &str| {
            let mut text = String::new();
            for (c, w) in row.iter().zip(width) {
                text.push_str(&format!("{c:<w$}  "));
            }
            text.push_str(detail);
            writeln!(f, "  {}", text.trim_end())
        };
        line(f, &header, "DETAIL")?;
        for (row, r) in cells.iter().zip(&self.rows) {
            line(f, row, r.status.detail())?;
        }
        let ok = self.rows.iter().filter(|r| r.status == Status::Ok).count();
        writeln!(f, "{ok} of {} secret(s) readable", self.rows.len())
    }
}

/// Checks every secret of `config` against its source, at most
/// `concurrency` at once (batching sources take theirs all at once), giving
/// up on what has not answered by `deadline`.
pub async fn check(
    config: &Config,
    deadline: Instant,
    concurrency: usize,
) -> Result<Report, source::Error> {
    let sources: Vec<Arc<dyn Source>> = source::build(config)?;
    let limiter = Limiter::new(concurrency);
    let (limiter, sources) = (&limiter, &sources);
    let groups = fetch::groups(config);
    let results: Vec<(Vec<usize>, Status)> = stream::iter(groups)
        .map(|members| async move {
            let secret = &config.secrets[members[0]];
            let source = &*sources[secret.source];
            let _turn = limiter.enter(source).await;
            let status =
                match tokio::time::timeout_at(deadline, source.may_read(secret, deadline)).await {
                    Ok(Ok(())) => Status::Ok,
                    Ok(Err(e)) => Status::from_error(&e),
                    Err(_) => Status::Unreachable(format!(
                        "{}: no answer before the deadline",
                        secret.address.describe()
                    )),
                };
            (members, status)
        })
        .buffer_unordered(config.secrets.len().max(1))
        .collect()
        .await;
    let mut rows: Vec<Option<Row>> = vec![None; config.secrets.len()];
    for (members, status) in results {
        for i in members {
            let s = &config.secrets[i];
            rows[i] = Some(Row {
                secret: s.name.clone(),
                source: config.sources[s.source].name.clone(),
                address: format!("{} {}", s.address.kind(), s.address.key()),
                status: status.clone(),
            });
        }
    }
    Ok(Report {
        rows: rows.into_iter().flatten().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(secret: &str, status: Status) -> Row {
        Row {
            secret: secret.into(),
            source: "vault".into(),
            address: format!("kv secret/{secret}"),
            status,
        }
    }

    #[test]
    fn the_table_lines_up_and_the_worst_status_is_the_exit() {
        let report = Report {
            rows: vec![
                row("db", Status::Ok),
                row("missing-one", Status::Missing("not found: x".into())),
                row("api", Status::Denied("permission denied: y".into())),
            ],
        };
        assert_eq!(report.exit(), Exit::NoPerm);
        assert_eq!(
            report.to_string(),
            "  SECRET       SOURCE  ADDRESS                STATUS   DETAIL
  db           vault   kv secret/db           ok
  missing-one  vault   kv secret/missing-one  missing  not found: x
  api          vault   kv secret/api          denied   permission denied: y
1 of 3 secret(s) readable
"
        );
        let all_ok = Report {
            rows: vec![row("db", Status::Ok)],
        };
        assert_eq!(all_ok.exit(), Exit::Ok);
        let unreachable = Status::from_error(&source::Error::unavailable("z"));
        assert_eq!(unreachable.exit(), Exit::Unavailable);
    }

    #[test]
    fn a_multi_line_error_is_one_line_cut_short() {
        let vault = source::Error::from_status(
            400,
            vec!["1 error occurred:\n\t* unsupported path\n\n".into()],
            "read x",
            None,
        );
        let status = Status::from_error(&vault);
        assert_eq!(
            status.detail(),
            "bad data: read x: HTTP 400: 1 error occurred: * unsupported path"
        );
        let long = Status::from_error(&source::Error::unavailable("é".repeat(500)));
        assert!(!long.detail().contains('\n'));
        assert_eq!(long.detail().chars().count(), MAX_DETAIL + 1);
        assert!(long.detail().ends_with('…'));
    }
}
