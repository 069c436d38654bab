//! Go's `fmt`, as Vault Agent's `printf` formats the values of a template
//! (Go's `text/template` over a Vault read decoded with `json.Number`): the
//! verbs `v s q d t x X f e g` with the flags `-`, `+`, `0`, a width and a
//! precision, applied to each element of a list or map as Go does (`%q` of a
//! list is `["a" "b"]`), a read's numbers typed `json.Number` (a string whose
//! `%d` is `%!d(json.Number=5432)`), bad verbs, missing and extra arguments
//! written as Go writes them, and floats formatted as `strconv` does.
//! [`check`] refuses a format outside that subset when the template is
//! loaded. One difference is known: `%q` writes a non-ASCII code point that
//! Unicode leaves unassigned as it is, where Go escapes it.

use std::collections::HashSet;
use std::fmt::Write as _;

use gotmpl::Value;

/// The identity of the strings that are a read's numbers (`json.Number`
/// in Vault Agent): their allocations, alive as long as the read's values.
#[derive(Debug, Default)]
pub struct Numbers(HashSet<usize>);

impl Numbers {
    /// Marks `s` as a number.
    pub fn add(&mut self, s: &std::sync::Arc<str>) {
        self.0
            .insert(std::sync::Arc::as_ptr(s) as *const u8 as usize);
    }

    /// Whether `v` is one of the read's numbers.
    pub fn has(&self, v: &Value) -> bool {
        matches!(v, Value::String(s) if self.0.contains(&(std::sync::Arc::as_ptr(s) as *const u8 as usize)))
    }
}

const VERBS: &str = "vsqdtxXfeg";

/// Checks that `format` stays within the supported subset of Go's verbs and
/// flags; the error names what is outside it.
pub fn check(format: &str) -> Result<(), String> {
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek().filter(|f| "-+0# ".contains(**f)) {
            flags.push(f);
            chars.next();
        }
        while chars.next_if(char::is_ascii_digit).is_some() {}
        if chars.next_if_eq(&'.').is_some() {
            while chars.next_if(char::is_ascii_digit).is_some() {}
        }
        let verb = match chars.next() {
            Some('%') if flags.is_empty() => continue,
            Some(v) if VERBS.contains(v) => v,
            Some(v) => return Err(format!("printf verb `%{v}` is not supported (supported: %v %s %q %d %t %x %X %f %e %g and %%)")),
            None => return Err("printf format ends in `%`".into()),
        };
        if let Some(f) = flags.chars().find(|f| "# ".contains(*f)) {
            return Err(format!(
                "printf flag `{f}` is not supported (supported: - + 0)"
            ));
        }
        if verb == 'q' && flags.contains('+') {
            return Err("printf `%+q` is not supported".into());
        }
    }
    Ok(())
}

/// The flags, width and precision of one verb.
#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

/// Go's `fmt.Sprintf(format, args...)` for a format [`check`] accepts.
pub fn sprintf(format: &str, args: &[Value], numbers: &Numbers) -> String {
    let p = Printer { numbers };
    let mut out = String::new();
    let mut next = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut s = Spec::default();
        while let Some(f) = chars.next_if(|f| "-+0".contains(*f)) {
            match f {
                '-' => (s.minus, s.zero) = (true, false),
                '+' => s.plus = true,
                _ => s.zero = !s.minus,
            }
        }
        s.wid = number(&mut chars);
        if chars.next_if_eq(&'.').is_some() {
            s.prec = Some(number(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        if verb == 'v' {
            s.plus = false;
        }
        match args.get(next) {
            Some(arg) => p.arg(&mut out, arg, verb, s),
            None => {
                let _ = write!(out, "%!{verb}(MISSING)");
            }
        }
        next += 1;
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, arg) in args[next..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            if matches!(arg, Value::Nil) {
                out.push_str("<nil>");
            } else {
                let _ = write!(out, "{}=", p.type_name(arg));
                p.arg(&mut out, arg, 'v', Spec::default());
            }
        }
        out.push(')');
    }
    out
}

fn number(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.next_if(char::is_ascii_digit) {
        // Go caps a width at 1e6; far below that is plenty for a file.
        n = Some((n.unwrap_or(0) * 10 + (d as usize - '0' as usize)).min(1_000_000));
    }
    n
}

struct Printer<'a> {
    numbers: &'a Numbers,
}

impl Printer<'_> {
    fn type_name(&self, v: &Value) -> &'static str {
        match v {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Uint(_) => "uint64",
            Value::Float(_) => "float64",
            Value::String(_) if self.numbers.has(v) => "json.Number",
            Value::String(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
            _ => "func",
        }
    }

    /// `printArg`: one argument at the top level.
    fn arg(&self, out: &mut String, v: &Value, verb: char, s: Spec) {
        match v {
            Value::Nil if verb == 'v' => pad(out, "<nil>", s),
            Value::Nil => {
                let _ = write!(out, "%!{verb}(<nil>)");
            }
            _ => self.value(out, v, verb, s),
        }
    }

    /// `printValue`: a value, or one inside a list or map.
    fn value(&self, out: &mut String, v: &Value, verb: char, s: Spec) {
        match v {
            // An interface holding nil, inside a list or a map.
            Value::Nil => pad(out, "<nil>", s),
            Value::Bool(b) => match verb {
                't' | 'v' => pad(out, if *b { "true" } else { "false" }, s),
                _ => self.bad(out, v, verb, s),
            },
            Value::Int(i) => self.integer(out, v, i.unsigned_abs(), *i < 0, verb, s),
            Value::Uint(u) => self.integer(out, v, *u, false, verb, s),
            Value::Float(f) => match verb {
                'v' | 'g' => float(out, *f, 'g', s.prec, s),
                'f' | 'e' => float(out, *f, verb, Some(s.prec.unwrap_or(6)), s),
                _ => self.bad(out, v, verb, s),
            },
            Value::String(text) => match verb {
                'v' | 's' => pad(out, truncate(text, s.prec), s),
                'q' => pad(out, &quote(truncate(text, s.prec)), s),
                'x' | 'X' => hex(out, text.as_bytes(), verb == 'X', s),
                _ => self.bad(out, v, verb, s),
            },
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    self.value(out, item, verb, s);
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push_str("map[");
                for (i, (k, item)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    self.value(out, &Value::String(k.clone()), verb, s);
                    out.push(':');
                    self.value(out, item, verb, s);
                }
                out.push(']');
            }
            _ => self.bad(out, v, verb, s),
        }
    }

    /// `badVerb`: `%!verb(type=value)`, the value as `%v` with the same flags.
    fn bad(&self, out: &mut String, v: &Value, verb: char, s: Spec) {
        let _ = write!(out, "%!{verb}({}=", self.type_name(v));
        self.value(out, v, 'v', s);
        out.push(')');
    }

    /// `fmtInteger` in base 10 or 16, and `%q` of a rune.
    fn integer(&self, out: &mut String, v: &Value, u: u64, negative: bool, verb: char, s: Spec) {
        let digits = match verb {
            'v' | 'd' => u.to_string(),
            'x' => format!("{u:x}"),
            'X' => format!("{u:X}"),
            'q' => {
                let r = u32::try_from(u)
                    .ok()
                    .filter(|_| !negative)
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}');
                return pad(out, &quote_rune(r), s);
            }
            _ => return self.bad(out, v, verb, s),
        };
        let mut prec = 0;
        match s.prec {
            Some(0) if u == 0 => {
                return padding(out, s.wid.unwrap_or(0), ' ');
            }
            Some(p) => prec = p,
            None if s.zero && !s.minus && s.wid.is_some() => {
                prec = s.wid.unwrap_or(0) - usize::from(negative || s.plus).min(s.wid.unwrap_or(0));
            }
            None => {}
        }
        let mut num = String::new();
        if negative {
            num.push('-');
        } else if s.plus {
            num.push('+');
        }
        num.push_str(&"0".repeat(prec.saturating_sub(digits.len())));
        num.push_str(&digits);
        pad(out, &num, Spec { zero: false, ..s });
    }
}

/// `truncateString`: at most `prec` code points.
fn truncate(s: &str, prec: Option<usize>) -> &str {
    match prec.and_then(|p| s.char_indices().nth(p)) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn padding(out: &mut String, n: usize, c: char) {
    out.extend(std::iter::repeat_n(c, n));
}

/// `padString`: `text` padded to the width, on the left unless `-`, with
/// zeros under `0`.
fn pad(out: &mut String, text: &str, s: Spec) {
    let n = s.wid.unwrap_or(0).saturating_sub(text.chars().count());
    let c = if s.zero && !s.minus { '0' } else { ' ' };
    if !s.minus {
        padding(out, n, c);
    }
    out.push_str(text);
    if s.minus {
        padding(out, n, c);
    }
}

/// `fmtSbx`: the bytes in hexadecimal, at most `prec` of them.
fn hex(out: &mut String, bytes: &[u8], upper: bool, s: Spec) {
    let bytes = &bytes[..s.prec.unwrap_or(bytes.len()).min(bytes.len())];
    let text: String = bytes
        .iter()
        .map(|b| match upper {
            true => format!("{b:02X}"),
            false => format!("{b:02x}"),
        })
        .collect();
    pad(out, &text, s);
}

/// Whether Go's `strconv.IsPrint` holds for `c`, but for unassigned code
/// points (see the module's doc).
fn printable(c: char) -> bool {
    let u = c as u32;
    if c.is_ascii() {
        return (0x20..0x7f).contains(&u);
    }
    let format_chars = [
        0xad..=0xad,
        0x600..=0x605,
        0x61c..=0x61c,
        0x6dd..=0x6dd,
        0x70f..=0x70f,
        0x890..=0x891,
        0x8e2..=0x8e2,
        0x180e..=0x180e,
        0x200b..=0x200f,
        0x202a..=0x202e,
        0x2060..=0x206f,
        0xfeff..=0xfeff,
        0xfff9..=0xfffb,
        0x110bd..=0x110bd,
        0x110cd..=0x110cd,
        0x13430..=0x1343f,
        0x1bca0..=0x1bca3,
        0x1d173..=0x1d17a,
        0xe0001..=0xe007f,
    ];
    !(c.is_control()
        || c.is_whitespace()
        || format_chars.iter().any(|r| r.contains(&u))
        || (0xe000..=0xf8ff).contains(&u)
        || u >= 0xf0000
        || (0xfdd0..=0xfdef).contains(&u)
        || u & 0xfffe == 0xfffe)
}

/// `strconv.AppendEscapedRune` of `c` inside quotes `q`.
fn escaped(out: &mut String, c: char, q: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        c if c == q => {
            out.push('\\');
            out.push(c);
        }
        c if printable(c) => out.push(c),
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c == '\x7f' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// `strconv.Quote`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escaped(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// `strconv.QuoteRune`.
fn quote_rune(c: char) -> String {
    let mut out = String::from("'");
    escaped(&mut out, c, '\'');
    out.push('\'');
    out
}

/// The decimal digits of `f` (no leading or trailing zeros; none for 0)
/// and where the point goes, rounded to `sig` significant digits or, with
/// `None`, the shortest that reads back as `f`: Go's `decimal` of strconv.
fn digits(f: f64, sig: Option<usize>) -> (String, i64) {
    if f == 0.0 {
        return (String::new(), 0);
    }
    let text = match sig {
        Some(n) => format!("{:.*e}", n.max(1) - 1, f.abs()),
        None => format!("{:e}", f.abs()),
    };
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0').to_owned();
    (digits, exp.parse::<i64>().unwrap_or(0) + 1)
}

/// `fmtE` of strconv: `d.ddde±XX` with `prec` decimals.
fn fmt_e(digits: &str, dp: i64, prec: usize) -> String {
    let mut out = String::new();
    let mut ds = digits.chars();
    out.push(ds.next().unwrap_or('0'));
    if prec > 0 {
        out.push('.');
        for _ in 0..prec {
            out.push(ds.next().unwrap_or('0'));
        }
    }
    let exp = if digits.is_empty() { 0 } else { dp - 1 };
    let _ = write!(
        out,
        "e{}{:02}",
        if exp < 0 { '-' } else { '+' },
        exp.unsigned_abs()
    );
    out
}

/// `fmtF` of strconv: `ddd.ddd` with `prec` decimals.
fn fmt_f(digits: &str, dp: i64, prec: usize) -> String {
    let at = |i: i64| match usize::try_from(i) {
        Ok(i) => digits.as_bytes().get(i).map_or('0', |b| *b as char),
        Err(_) => '0',
    };
    let mut out = String::new();
    if dp > 0 {
        (0..dp).for_each(|i| out.push(at(i)));
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        (0..prec as i64).for_each(|i| out.push(at(dp + i)));
    }
    out
}

/// `strconv.FormatFloat(f, verb, prec, 64)` for `e`, `f` and `g` (`prec`
/// `None`: the shortest), without the sign.
pub fn float_text(f: f64, verb: char, prec: Option<usize>) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else {
            "Inf".into()
        };
    }
    match verb {
        'f' => match prec {
            Some(p) => format!("{:.*}", p, f.abs()),
            None => {
                let (d, dp) = digits(f, None);
                fmt_f(&d, dp, usize::try_from(d.len() as i64 - dp).unwrap_or(0))
            }
        },
        'e' => {
            let (d, dp) = digits(f, prec.map(|p| p + 1));
            fmt_e(&d, dp, prec.unwrap_or(d.len().saturating_sub(1)))
        }
        _ => {
            let (d, dp) = digits(f, prec.map(|p| p.max(1)));
            let nd = d.len() as i64;
            let mut p = prec.map_or(nd, |p| p.max(1) as i64);
            let mut eprec = p;
            if eprec > nd && nd >= dp {
                eprec = nd;
            }
            if prec.is_none() {
                eprec = 6;
            }
            let exp = dp - 1;
            if exp < -4 || exp >= eprec {
                p = p.min(nd);
                return fmt_e(&d, dp, usize::try_from(p - 1).unwrap_or(0));
            }
            if p > dp {
                p = nd;
            }
            fmt_f(&d, dp, usize::try_from(p - dp).unwrap_or(0))
        }
    }
}

/// `fmtFloat` of fmt: the sign, then zeros or spaces to the width.
fn float(out: &mut String, f: f64, verb: char, prec: Option<usize>, s: Spec) {
    let body = float_text(f, verb, prec);
    let sign = if f.is_sign_negative() && !f.is_nan() {
        "-"
    } else if s.plus {
        "+"
    } else {
        ""
    };
    if !f.is_finite() {
        return pad(out, &format!("{sign}{body}"), Spec { zero: false, ..s });
    }
    if sign.is_empty() {
        return pad(out, &body, s);
    }
    let len = body.len() + 1;
    match s.wid {
        Some(w) if s.zero && !s.minus && w > len => {
            out.push_str(sign);
            padding(out, w - len, '0');
            out.push_str(&body);
        }
        _ => pad(out, &format!("{sign}{body}"), s),
    }
}

#[cfg(test)]
mod tests;
