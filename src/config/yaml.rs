//! Reading and writing YAML, for the config file, the `file` source, the
//! `yaml` format and an injected pod's config: one parser,
//! serde-saphyr (maintained, serde-based, with positions in its errors),
//! whose event parser (granit-parser) [`super::marks`] also reads. What a text
//! may expand to is bounded before values are built (nesting, values with
//! aliases expanded); duplicate keys are refused; errors say what is wrong in
//! plain words and where, never quoting the text (a secrets file's values).

use serde::de::DeserializeOwned;
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Error, MessageFormatter};

/// Deepest `[`/`{` nesting accepted. YAML parsers take quadratic time over
/// deep nesting (100,000 `[` took 18 s to refuse); no config or secrets file
/// needs more than a few levels.
pub const MAX_NESTING: usize = 64;
/// Deepest nesting of lists and mappings of any style (a config needs about six).
pub const MAX_DEPTH: usize = 64;
/// Most values a document may hold with every alias expanded (an alias bomb
/// of a few lines would otherwise expand to billions).
pub const MAX_VALUES: usize = 200_000;

/// Why a text was not read: where, when the parser says, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Line and column, from 1.
    pub at: Option<(usize, usize)>,
    /// What is wrong, in plain words, without the text.
    pub message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Some((line, column)) => write!(f, "line {line}, column {column}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Reads `text` as a `T`, within the bounds above.
pub fn read<T: DeserializeOwned>(text: &str) -> Result<T, Refused> {
    nesting(text).map_err(|message| Refused { at: None, message })?;
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_depth: MAX_DEPTH, max_nodes: MAX_VALUES },
        alias_limits: serde_saphyr::alias_limits! { max_total_replayed_events: MAX_VALUES },
        // A snippet would hold the text around the error: a secret's value.
        with_snippet: false,
        // YAML 1.2's core schema, as the config has always been read: `yes`,
        // `n`, `on`, `0440` and `1_000` are text.
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
    };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| Refused {
        at: e
            .location()
            .and_then(|l| {
                Some((
                    usize::try_from(l.line()).ok()?,
                    usize::try_from(l.column()).ok()?,
                ))
            })
            .filter(|&(line, _)| line > 0),
        message: explain(&e),
    })
}

/// Writes `value` as YAML: every string on one line, plain where that reads
/// back the same and quoted otherwise (also where a YAML 1.1 reader would see
/// a bool, a number or a null: `yes`, `0x1F`, `~`), so libyaml, PyYAML and Go
/// read back what was written. (Block scalars, the default for multi-line
/// text, are not: libyaml refuses a block line that starts with a tab.)
pub fn write<W: std::io::Write, T: serde::Serialize>(
    out: &mut W,
    value: &T,
) -> Result<(), serde_saphyr::SerializeError> {
    serde_saphyr::to_io_writer_with_options(out, value, write_options())
}

/// `value` as YAML text, written as [`write`] does.
pub fn text<T: serde::Serialize>(value: &T) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string_with_options(value, write_options())
}

fn write_options() -> serde_saphyr::SerializerOptions {
    serde_saphyr::ser_options! { prefer_block_scalars: false }
}

/// Refuses `text` when more than [`MAX_NESTING`] `[` or `{` are open at once,
/// naming the line. Every bracket counts, quoted or not: the count can only
/// over-report, never let deep nesting through.
pub fn nesting(text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    let mut line = 1usize;
    for c in text.bytes() {
        match c {
            b'\n' => line += 1,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(format!(
                        "more than {MAX_NESTING} lists or mappings (`[`, `{{`) open at once at line {line}; \
                         refused before parsing"
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// What `e` means, in plain words and without the text: the parser's
/// messages name tokens, serde's are told without the value they met.
fn explain(e: &Error) -> String {
    let mut e = e;
    while let Error::WithSnippet { error, .. } | Error::AliasError { error, .. } = e {
        e = error;
    }
    match e {
        Error::Budget {
            breach: BudgetBreach::Depth { .. },
            ..
        }
        | Error::AliasReplayStackDepthExceeded { .. } => {
            format!("not accepted: it nests deeper than {MAX_DEPTH} levels")
        }
        Error::Budget { .. }
        | Error::AliasReplayLimitExceeded { .. }
        | Error::AliasExpansionLimitExceeded { .. } => format!(
            "not accepted: it holds more than {MAX_VALUES} values once its aliases are expanded; \
             a config needs far fewer"
        ),
        other => format!("not valid YAML: {}", wrong(other)),
    }
}

/// What is wrong in the text at `e`.
fn wrong(e: &Error) -> String {
    match e {
        Error::ExternalMessage { msg, .. } => syntax(msg),
        Error::DuplicateMappingKey { key: Some(key), .. } => {
            format!("the key `{key}` is given twice")
        }
        Error::DuplicateMappingKey { key: None, .. } => "a key is given twice".into(),
        Error::NullIntoString { .. } => "a key is empty or null; keys are names".into(),
        Error::Unexpected { expected, .. } if expected.contains("mapping") => {
            "expected a mapping (`key: value` lines) here".into()
        }
        Error::Unexpected { expected, .. } if expected.contains("scalar") => {
            "expected a single value here, not a list or a mapping".into()
        }
        Error::Unexpected { expected, .. } => format!("expected {expected} here"),
        Error::SerdeInvalidType { expected, .. } | Error::SerdeInvalidValue { expected, .. } => {
            format!("expected {expected} here")
        }
        Error::MultipleDocuments { .. } => "a second document (`---`); one is read".into(),
        Error::UnknownAnchor { .. } => {
            "an alias (`*name`) with no anchor (`&name`) before it".into()
        }
        other => serde_saphyr::UserMessageFormatter
            .format_message(other)
            .into_owned(),
    }
}

/// The parser's message `msg` in plain words: what usually causes it.
fn syntax(msg: &str) -> String {
    let said = |s: &str| msg.contains(s);
    if said("did not find expected key") {
        "a line is indented differently from the keys above it; keys of one mapping start at the same \
         indentation, and a nested key further right than its parent"
            .into()
    } else if said("mapping values are not allowed") {
        "a `:` where none can be; check the indentation (a nested key deeper than its neighbours, or not \
         lined up under its list item), or quote a value that contains `: `"
            .into()
    } else if said("tab") {
        "a tab in the indentation; indent with spaces, not tabs".into()
    } else if said("unexpected character") {
        "a character that cannot start a value; quote values that start with `@`, `` ` `` or `%`"
            .into()
    } else if said("expected '-' indicator") {
        "a line is indented differently from the list items above it; the items of one list start with \
         `- ` at the same indentation"
            .into()
    } else if said("unclosed bracket '['") {
        "the list opened here with `[` is not closed with `]`".into()
    } else if said("unclosed bracket '{'") {
        "the mapping opened here with `{` is not closed with `}`".into()
    } else if said("unclosed quote") {
        "the quote opened here is not closed".into()
    } else {
        format!("{msg}; check the indentation around it")
    }
}

#[cfg(test)]
mod tests;
