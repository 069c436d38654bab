//! The config of templates: the top-level `templates:` (one file from several
//! secrets), `template_file` (a template kept beside the config, for
//! `templates:` and for a secret's own `template`), and `write: false` (a
//! secret fetched for templates but never written on its own).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use super::blocks::{one_of, one_of_schema, Entry, ModeText, OneOf};
use super::secrets::RawSecret;
use super::sidecar::RawAction;
use super::{check_relative, Action, Secret, Validator};

/// One file rendered from several secrets. Exactly one of `template` or `template_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = one_of_schema::<Self>)]
pub struct RawTemplate {
    /// File name relative to `output.dir`.
    pub file: String,
    /// minijinja template over `secrets["<name>"].<field>`; a missing secret or field is an error.
    pub template: Option<String>,
    /// A file holding the template, relative to the config file; the sidecar watches it.
    pub template_file: Option<PathBuf>,
    /// File mode, an octal string (default: `output.mode`).
    pub mode: Option<ModeText>,
    /// What to do after the file changed (once per change).
    #[serde(default)]
    pub on_change: Vec<RawAction>,
}

impl Entry for RawTemplate {}

one_of!(RawTemplate: template, template_file);

/// The largest template file read.
const MAX_TEMPLATE_BYTES: u64 = 1 << 20;

/// A file rendered from several secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// File name relative to the output directory.
    pub file: String,
    /// The template text (from `template`, or read from `template_file`).
    pub text: String,
    /// File mode.
    pub mode: u32,
    /// Actions after the file changed.
    pub on_change: Vec<Action>,
    /// The secrets it reads, as indices into [`super::Config::secrets`], in config order.
    pub inputs: Vec<usize>,
    /// Whether it looks secrets up by a computed name (then `inputs` is every secret).
    pub dynamic: bool,
}

impl Validator<'_> {
    /// The text of `template` or of `template_file` (read now, and remembered
    /// to be watched); a problem when both are given.
    pub(super) fn template_text(
        &mut self,
        at: &str,
        inline: Option<String>,
        file: Option<PathBuf>,
    ) -> Option<String> {
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.problem(
                    format!("{at}.template_file"),
                    "cannot be used with `template`: give one or the other",
                );
                None
            }
            (Some(t), None) => Some(t),
            (None, Some(p)) => {
                let path = self.path(&format!("{at}.template_file"), p);
                let text = read_template(&path);
                self.template_files.push(path);
                match text {
                    Ok(t) => Some(t),
                    Err(why) => {
                        self.problem(format!("{at}.template_file"), why);
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }

    /// `write: false` takes none of the keys that only shape a written file.
    pub(super) fn unwritten(&mut self, at: &str, s: &RawSecret) {
        let shaping = [
            ("file", s.file.is_some()),
            ("format", s.format.is_some()),
            ("key", s.key.is_some()),
            ("template", s.template.is_some()),
            ("template_file", s.template_file.is_some()),
            ("mode", s.mode.is_some()),
            ("on_change", !s.on_change.is_empty()),
        ];
        for (key, given) in shaping {
            if given {
                self.problem(
                    format!("{at}.{key}"),
                    "this secret has `write: false`: it writes no file of its own (templates read it)",
                );
            }
        }
    }

    /// Validates `templates:` against the secrets; `taken` maps the files the
    /// secrets write to the secret writing each.
    pub(super) fn templates(
        &mut self,
        raw: Vec<Option<RawTemplate>>,
        secrets: &[Secret],
        default_mode: u32,
        taken: &HashMap<String, String>,
    ) -> Vec<Template> {
        let names: HashMap<&str, usize> = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let mut files = HashSet::new();
        let mut out = Vec::new();
        for (i, t) in raw.into_iter().enumerate() {
            let Some(t) = t else { continue };
            let at = format!("templates[{i}]");
            let before = self.problems.len();
            if let Err(why) = check_relative(&t.file) {
                self.problem(
                    format!("{at}.file"),
                    format!("`{}`: {why}", t.file.escape_debug()),
                );
            } else if let Some(other) = taken.get(&t.file) {
                self.problem(
                    format!("{at}.file"),
                    format!("file `{}` is also written by secret `{other}`", t.file),
                );
            } else if !files.insert(t.file.clone()) {
                self.problem(
                    format!("{at}.file"),
                    format!("file `{}` is also written by another template", t.file),
                );
            }
            let mode = self.mode(&format!("{at}.mode"), t.mode.as_deref(), default_mode);
            let on_change: Vec<Action> = t
                .on_change
                .into_iter()
                .enumerate()
                .filter_map(|(j, a)| self.action(&format!("{at}.on_change[{j}]"), a))
                .collect();
            let key = if t.template_file.is_some() {
                "template_file"
            } else {
                "template"
            };
            let text = self.template_text(&at, t.template, t.template_file);
            let reads = match &text {
                None => {
                    if self.problems.len() == before {
                        self.problem(at.clone(), "needs `template` or `template_file`");
                    }
                    None
                }
                Some(text) => match crate::render::jinja::reads(text) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        self.problem(format!("{at}.{key}"), e.to_string());
                        None
                    }
                },
            };
            let mut inputs = Vec::new();
            if let Some(reads) = &reads {
                for name in &reads.names {
                    match names.get(name.as_str()) {
                        Some(&j) => inputs.push(j),
                        None => self.problem(
                            format!("{at}.{key}"),
                            format!("reads secret `{name}`, which is not configured"),
                        ),
                    }
                }
                if reads.dynamic {
                    inputs = (0..secrets.len()).collect();
                }
                inputs.sort_unstable();
                if inputs.is_empty() && self.problems.len() == before {
                    self.problem(
                        format!("{at}.{key}"),
                        "reads no secret: use secrets[\"<name>\"].<field>",
                    );
                }
            }
            if self.problems.len() != before {
                continue;
            }
            let (Some(text), Some(reads), Some(mode)) = (text, reads, mode) else {
                continue;
            };
            out.push(Template {
                file: t.file,
                text,
                mode,
                on_change,
                inputs,
                dynamic: reads.dynamic,
            });
        }
        out
    }
}

/// Reads a template file: UTF-8, at most [`MAX_TEMPLATE_BYTES`].
fn read_template(path: &std::path::Path) -> Result<String, String> {
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut text = String::new();
    file.take(MAX_TEMPLATE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(cannot)?;
    if text.len() as u64 > MAX_TEMPLATE_BYTES {
        return Err(format!(
            "{} is larger than {MAX_TEMPLATE_BYTES} bytes",
            path.display()
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, Problem};

    const HEAD: &str = "sources:\n  - vault: { address: http://127.0.0.1:8200, auth: { token_file: /t } }\noutput: { dir: /run/x }\nsecrets:\n  - { name: db, kv: { mount: secret, path: app/db }, write: false }\n  - { name: api-key, read: x/api }\n";

    fn parse(rest: &str, base: &Path) -> Result<Config, Vec<Problem>> {
        Config::parse(&format!("{HEAD}{rest}"), base)
    }

    #[test]
    fn templates_know_their_inputs_and_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.tmpl"), "u={{ secrets.db.username }}\n").unwrap();
        let c = parse(
            "templates:\n  - file: conf/app.properties\n    template_file: app.tmpl\n    mode: \"0440\"\n    on_change: [ { exec: [/bin/true] } ]\n  - file: all.json\n    template: \"{{ secrets['api-key'].t }}{{ secrets[x] }}\"\n",
            dir.path(),
        )
        .unwrap();
        assert!(!c.secrets[0].write);
        assert!(c.secrets[0].files().is_empty());
        assert_eq!(c.templates[0].inputs, [0]);
        assert_eq!(c.templates[0].text, "u={{ secrets.db.username }}\n");
        assert_eq!(c.templates[0].mode, 0o440);
        assert_eq!(c.templates[1].inputs, [0, 1]);
        assert!(c.templates[1].dynamic);
        assert_eq!(c.template_files, [dir.path().join("app.tmpl")]);
        let summary = c.to_string();
        assert!(
            summary.contains("  db: kv secret/app/db from vault (write: false)\n"),
            "{summary}"
        );
        assert!(
            summary.contains(
                "templates:\n  conf/app.properties <- db (mode 0440, 1 on_change action(s))\n"
            ),
            "{summary}"
        );
        assert!(
            summary.contains("  all.json <- db, api-key (looked up by computed name: any secret)"),
            "{summary}"
        );
    }

    #[test]
    fn a_secret_template_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("url.tmpl"), "{{ user }}@db").unwrap();
        let c = Config::parse(
            "sources: [ { file: { path: s.yaml } } ]\noutput: { dir: /x }\nsecrets:\n  - { name: url, read: a/b, template_file: url.tmpl }\n",
            dir.path(),
        )
        .unwrap();
        assert_eq!(c.secrets[0].template.as_deref(), Some("{{ user }}@db"));
        assert_eq!(c.secrets[0].format, super::super::Format::Template);
    }

    #[test]
    fn bad_templates_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let cases: &[(&str, &str, &str)] = &[
            (
                "templates:\n  - { file: a, template: \"{{ secrets.nope.x }}\" }\n",
                "templates[0].template",
                "reads secret `nope`, which is not configured",
            ),
            (
                "templates:\n  - { file: a, template: \"x\", template_file: t }\n",
                "templates[0].template_file",
                "cannot be used with `template`",
            ),
            ("templates:\n  - { file: a }\n", "templates[0]", "needs `template` or `template_file`"),
            (
                "templates:\n  - { file: api-key, template: \"{{ secrets.db.x }}\" }\n",
                "templates[0].file",
                "file `api-key` is also written by secret `api-key`",
            ),
            (
                "templates:\n  - { file: a, template: \"{{ secrets.db.x }}\" }\n  - { file: a, template: \"{{ secrets.db.y }}\" }\n",
                "templates[1].file",
                "also written by another template",
            ),
            (
                "templates:\n  - { file: ../a, template: \"{{ secrets.db.x }}\" }\n",
                "templates[0].file",
                "must not contain `..`",
            ),
            (
                "templates:\n  - { file: a, template: \"{{ secrets.db.x \" }\n",
                "templates[0].template",
                "syntax error",
            ),
            (
                "templates:\n  - { file: a, template: \"static\" }\n",
                "templates[0].template",
                "reads no secret",
            ),
            (
                "templates:\n  - { file: a, template_file: missing.tmpl }\n",
                "templates[0].template_file",
                "cannot read",
            ),
            (
                "  - { name: c, read: x/c, write: false, file: c.txt, key: k }\n",
                "secrets[2].file",
                "`write: false`",
            ),
        ];
        for (text, path, message) in cases {
            let problems = parse(text, dir.path()).unwrap_err();
            assert!(
                problems
                    .iter()
                    .any(|p| p.path == *path && p.message.contains(message)),
                "{text}: expected {path}: {message}, got {problems:?}"
            );
        }
    }
}
