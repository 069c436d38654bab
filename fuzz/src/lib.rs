//! What the fuzz targets share: the invariants they assert beyond "no panic"
//! (no secret byte in an error message, files inside the output directory)
//! and models of the readers the formats are written for (`sh` for `env`,
//! python-dotenv for `dotenv`), so a round trip is checked at fuzzing speed;
//! the normal suite runs the real `sh` and python-dotenv (proptest).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// `value` with each ASCII letter and digit moved one along (`a`→`b`, `z`→`a`,
/// `9`→`0`): the same length, class (UTF-8 or not, NULs) and shape, other
/// bytes. A message that quotes a value changes with it; one that does not,
/// does not.
pub fn twin(value: &[u8]) -> Vec<u8> {
    value
        .iter()
        .map(|&b| match b {
            b'z' => b'a',
            b'Z' => b'A',
            b'9' => b'0',
            b if b.is_ascii_alphanumeric() => b + 1,
            b => b,
        })
        .collect()
}

/// The JSON text `json` with the letters and digits of every string that is
/// not an object key moved as [`twin`] moves them, in place: the same length
/// and positions (a parser's line and column stay), the same keys, other
/// values. Escapes are kept as they are.
pub fn twin_json_values(json: &[u8]) -> Vec<u8> {
    let mut out = json.to_vec();
    let mut i = 0;
    while i < json.len() {
        if json[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut j = start;
        while j < json.len() && json[j] != b'"' {
            j += if json[j] == b'\\' { 2 } else { 1 };
        }
        let end = j.min(json.len());
        let key = json[end.saturating_add(1).min(json.len())..]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            == Some(&b':');
        if !key {
            let mut k = start;
            while k < end {
                if json[k] == b'\\' {
                    // `\uXXXX` keeps its digits; any other escape its letter.
                    k += if json.get(k + 1) == Some(&b'u') { 6 } else { 2 };
                    continue;
                }
                out[k] = twin(&json[k..=k])[0];
                k += 1;
            }
        }
        i = end + 1;
    }
    out
}

/// The first of `values` that `message` quotes, if any, told by
/// `twin_message`, the message of the same input with each value replaced by
/// its [`twin`]: a value in the first whose twin is in the second (and not
/// the value itself) was copied from the values. One shorter than four bytes, without a letter or digit, or held by
/// `public` text (names, the template) proves nothing and is skipped.
pub fn leaked<'a>(
    message: &str,
    twin_message: &str,
    values: impl IntoIterator<Item = &'a [u8]>,
    public: &[&str],
) -> Option<String> {
    values
        .into_iter()
        .filter(|v| v.len() >= 4 && v.iter().any(u8::is_ascii_alphanumeric))
        .filter(|v| !public.iter().any(|p| contains(p.as_bytes(), v)))
        .find(|v| {
            contains(message.as_bytes(), v)
                && !contains(twin_message.as_bytes(), v)
                && contains(twin_message.as_bytes(), &twin(v))
        })
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Whether `hay` holds `needle`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Panics if `message` quotes one of `values` (see [`leaked`]).
pub fn assert_no_leak<'a>(
    what: &str,
    message: &str,
    twin_message: &str,
    values: impl IntoIterator<Item = &'a [u8]>,
    public: &[&str],
) {
    if let Some(v) = leaked(message, twin_message, values, public) {
        panic!("{what}: the error quotes a secret value {v:?}: {message}");
    }
}

/// Whether `file`, relative to an output directory, stays inside it: not
/// empty, not absolute, nothing but plain names (no `..`, no `.`-only path).
pub fn stays_inside(file: &str) -> bool {
    let path = Path::new(file);
    !file.is_empty()
        && !file.contains('\0')
        && path.components().count() > 0
        && path.components().all(|c| matches!(c, Component::Normal(_)))
}

/// `path` with `.` and `..` resolved as written (no symlink followed).
pub fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// Reads `export NAME=WORD` lines as a POSIX shell does (single and double
/// quotes, backslashes, line continuations); an expansion (`$`, a backquote)
/// or anything else is an error, since `env` output must hold none.
pub fn sh_exports(script: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut vars = BTreeMap::new();
    let mut i = 0;
    while i < script.len() {
        let rest = &script[i..];
        let Some(r) = rest.strip_prefix(b"export ") else {
            return Err(format!("byte {i}: not an export line"));
        };
        i += b"export ".len();
        let eq = r
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| format!("byte {i}: no ="))?;
        let name = &r[..eq];
        let valid = name
            .first()
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
            && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
        if !valid {
            return Err(format!("byte {i}: bad name"));
        }
        let name = String::from_utf8_lossy(name).into_owned();
        i += eq + 1;
        let mut value = Vec::new();
        loop {
            match script.get(i) {
                None => return Err("no newline at the end".into()),
                Some(b'\n') => {
                    i += 1;
                    break;
                }
                Some(b'\'') => {
                    let end = script[i + 1..]
                        .iter()
                        .position(|&b| b == b'\'')
                        .ok_or("unterminated single quote")?;
                    value.extend_from_slice(&script[i + 1..i + 1 + end]);
                    i += end + 2;
                }
                Some(b'\\') => match script.get(i + 1) {
                    Some(b'\n') => i += 2,
                    Some(&c) => {
                        value.push(c);
                        i += 2;
                    }
                    None => return Err("backslash at the end".into()),
                },
                Some(b'"') => return Err(format!("byte {i}: double quotes are not written")),
                Some(b'$' | b'`') => return Err(format!("byte {i}: an expansion")),
                Some(b' ' | b'\t' | b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')') => {
                    return Err(format!("byte {i}: a word ends before the line does"))
                }
                Some(&c) => {
                    value.push(c);
                    i += 1;
                }
            }
        }
        vars.insert(name, value);
    }
    Ok(vars)
}

/// Reads `NAME=VALUE` lines as python-dotenv 1.2 does with interpolation on
/// (its `parser.py` and `variables.py`): single-quoted values decode `\\`
/// and `\'`, double-quoted ones Python's escapes `\\ \' \" \a \b \f \n \r
/// \t \v`; then `${NAME:-default}` is replaced in every value, from the
/// names read before it (none is in the environment here).
pub fn dotenv(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or("no =")?;
        let name = &rest[..eq];
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '#') {
            return Err(format!("bad name {name:?}"));
        }
        rest = &rest[eq + 1..];
        let quote = rest.chars().next().ok_or("no value")?;
        if quote != '\'' && quote != '"' {
            return Err("an unquoted value is not written".into());
        }
        let mut raw = String::new();
        let mut chars = rest[1..].char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated quote".into()),
                Some((j, c)) if c == quote => break j + 1,
                Some((_, '\\')) => {
                    let (_, e) = chars.next().ok_or("backslash at the end")?;
                    raw.push('\\');
                    raw.push(e);
                }
                Some((_, c)) => raw.push(c),
            }
        };
        rest = &rest[end + 1..];
        rest = rest
            .strip_prefix('\n')
            .ok_or("no newline after the value")?;
        let decoded = unescape(&raw, quote == '"');
        let value = interpolate(&decoded, &vars);
        vars.insert(name.to_owned(), value);
    }
    Ok(vars)
}

fn unescape(raw: &str, double: bool) -> String {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let next = chars.peek().copied();
        let decoded = match next {
            Some('\\') => Some('\\'),
            Some('\'') => Some('\''),
            Some('"') if double => Some('"'),
            Some('a') if double => Some('\x07'),
            Some('b') if double => Some('\x08'),
            Some('f') if double => Some('\x0c'),
            Some('n') if double => Some('\n'),
            Some('r') if double => Some('\r'),
            Some('t') if double => Some('\t'),
            Some('v') if double => Some('\x0b'),
            _ => None,
        };
        match decoded {
            Some(d) => {
                out.push(d);
                chars.next();
            }
            None => out.push('\\'),
        }
    }
    out
}

/// python-dotenv's `\$\{(?P<name>[^\}:]*)(?::-(?P<default>[^\}]*))?\}`.
fn interpolate(value: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let name_end = after.find(['}', ':']).unwrap_or(after.len());
        let name = &after[..name_end];
        let tail = &after[name_end..];
        let (default, used) = if let Some(t) = tail.strip_prefix('}') {
            (None, after.len() - t.len())
        } else if let Some(d) = tail.strip_prefix(":-") {
            match d.find('}') {
                Some(e) => (Some(&d[..e]), after.len() - d.len() + e + 1),
                None => {
                    out.push_str("${");
                    rest = after;
                    continue;
                }
            }
        } else {
            out.push_str("${");
            rest = after;
            continue;
        };
        let resolved = vars
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.unwrap_or_default().to_owned());
        out.push_str(&resolved);
        rest = &after[used..];
    }
    out.push_str(rest);
    out
}

/// The keys of a JSON document's objects, at every depth: names, not secrets.
pub fn json_keys(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Array(a) => a.iter().for_each(|x| json_keys(x, out)),
        serde_json::Value::Object(m) => m.iter().for_each(|(k, x)| {
            out.push(k.clone());
            json_keys(x, out)
        }),
        _ => {}
    }
}
