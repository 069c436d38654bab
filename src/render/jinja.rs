//! The template language, which the config checks when it loads and
//! [`crate::render::format`] and [`crate::render::template`] run: the one minijinja
//! environment (strict undefined, the filters that escape values) and the
//! secrets a template reads, found by parsing it. It depends on no other
//! module of the crate, so the config can use it without a cycle.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use minijinja::machinery::ast::{CallArg, Expr, Stmt};
use minijinja::machinery::{self, WhitespaceConfig};
use minijinja::syntax::SyntaxConfig;

/// The name under which a template sees the secrets.
pub const SECRETS: &str = "secrets";

/// Compiles `template` to find syntax errors at config time.
pub fn check(template: &str) -> Result<(), minijinja::Error> {
    environment().template_from_str(template).map(|_| ())
}

/// The one template environment (strict undefined), for secrets' own
/// templates and for `templates:`, with filters that escape values where they
/// go: `urlencode`, `tojson` (minijinja's), `b64encode` and `b64decode`.
pub fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_filter("urlencode", urlencode);
    env.add_filter("b64encode", |v: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(v)
    });
    env.add_filter("b64decode", b64decode);
    env
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so a
/// value is safe in any part of a URL: userinfo, path segment or query (unlike
/// Jinja's `urlencode`, which leaves `/` as it is).
fn urlencode(v: &minijinja::Value) -> std::result::Result<String, minijinja::Error> {
    let text = match v.as_str() {
        Some(s) => s.to_owned(),
        None if v.is_number() => v.to_string(),
        None => {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                "urlencode takes a string",
            ))
        }
    };
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    Ok(out)
}

/// Decodes standard base64 into text; never quotes its input in an error.
fn b64decode(v: &str) -> std::result::Result<String, minijinja::Error> {
    use base64::Engine;
    let bad = |what: &str| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("b64decode: the value is not {what}"),
        )
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .map_err(|_| bad("base64"))?;
    String::from_utf8(bytes).map_err(|_| bad("base64 of UTF-8 text"))
}

/// The secrets a template reads, found by parsing it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reads {
    /// Secrets named in the text: `secrets.db` or `secrets["db"]`.
    pub names: BTreeSet<String>,
    /// Whether it also looks secrets up by a computed name, or uses `secrets`
    /// as a whole: then it may read any of them.
    pub dynamic: bool,
}

/// Parses `text` and finds the secrets it reads; a syntax error is returned as is.
pub fn reads(text: &str) -> Result<Reads, minijinja::Error> {
    let ast = machinery::parse(text, "template", SyntaxConfig, WhitespaceConfig::default())?;
    let mut reads = Reads::default();
    stmt(&ast, &mut reads);
    Ok(reads)
}

fn stmts(list: &[Stmt<'_>], r: &mut Reads) {
    list.iter().for_each(|s| stmt(s, r));
}

fn stmt(s: &Stmt<'_>, r: &mut Reads) {
    match s {
        Stmt::Template(t) => stmts(&t.children, r),
        Stmt::EmitExpr(e) => expr(&e.expr, r),
        Stmt::EmitRaw(_) => {}
        Stmt::ForLoop(l) => {
            for e in [&l.target, &l.iter].into_iter().chain(&l.filter_expr) {
                expr(e, r);
            }
            stmts(&l.body, r);
            stmts(&l.else_body, r);
        }
        Stmt::IfCond(c) => {
            expr(&c.expr, r);
            stmts(&c.true_body, r);
            stmts(&c.false_body, r);
        }
        Stmt::WithBlock(w) => {
            for (target, value) in &w.assignments {
                expr(target, r);
                expr(value, r);
            }
            stmts(&w.body, r);
        }
        Stmt::Set(s) => {
            expr(&s.target, r);
            expr(&s.expr, r);
        }
        Stmt::SetBlock(s) => {
            expr(&s.target, r);
            s.filter.iter().for_each(|f| expr(f, r));
            stmts(&s.body, r);
        }
        Stmt::AutoEscape(a) => {
            expr(&a.enabled, r);
            stmts(&a.body, r);
        }
        Stmt::FilterBlock(f) => {
            expr(&f.filter, r);
            stmts(&f.body, r);
        }
        Stmt::Do(d) => call(&d.call.expr, &d.call.args, r),
        // Statements of minijinja features this crate does not enable
        // (macros, includes, loop controls): anything may be read there.
        #[allow(unreachable_patterns)]
        _ => r.dynamic = true,
    }
}

fn call(callee: &Expr<'_>, args: &[CallArg<'_>], r: &mut Reads) {
    expr(callee, r);
    args.iter().for_each(|a| arg(a, r));
}

fn arg(a: &CallArg<'_>, r: &mut Reads) {
    match a {
        CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e) => {
            expr(e, r)
        }
    }
}

fn expr(e: &Expr<'_>, r: &mut Reads) {
    match e {
        // `secrets` itself, not followed by a name: any secret may be read.
        Expr::Var(v) => r.dynamic |= v.id == SECRETS,
        Expr::Const(_) => {}
        Expr::GetAttr(a) => match &a.expr {
            Expr::Var(v) if v.id == SECRETS => {
                r.names.insert(a.name.to_owned());
            }
            inner => expr(inner, r),
        },
        Expr::GetItem(g) => match (&g.expr, &g.subscript_expr) {
            (Expr::Var(v), Expr::Const(c)) if v.id == SECRETS && c.value.as_str().is_some() => {
                r.names
                    .insert(c.value.as_str().unwrap_or_default().to_owned());
            }
            (inner, subscript) => {
                expr(inner, r);
                expr(subscript, r);
            }
        },
        Expr::Slice(s) => {
            expr(&s.expr, r);
            for e in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                expr(e, r);
            }
        }
        Expr::UnaryOp(u) => expr(&u.expr, r),
        Expr::BinOp(b) => {
            expr(&b.left, r);
            expr(&b.right, r);
        }
        Expr::Compare(c) => {
            expr(&c.expr, r);
            c.ops.iter().for_each(|op| expr(&op.expr, r));
        }
        Expr::IfExpr(i) => {
            expr(&i.test_expr, r);
            expr(&i.true_expr, r);
            i.false_expr.iter().for_each(|e| expr(e, r));
        }
        Expr::Filter(f) => {
            f.expr.iter().for_each(|e| expr(e, r));
            f.args.iter().for_each(|a| arg(a, r));
        }
        Expr::Test(t) => {
            expr(&t.expr, r);
            t.args.iter().for_each(|a| arg(a, r));
        }
        Expr::Call(c) => call(&c.expr, &c.args, r),
        Expr::List(l) => l.items.iter().for_each(|e| expr(e, r)),
        Expr::Map(m) => m.keys.iter().chain(&m.values).for_each(|e| expr(e, r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> (Vec<String>, bool) {
        let r = reads(text).unwrap();
        (r.names.into_iter().collect(), r.dynamic)
    }

    #[test]
    fn reads_are_found_by_parsing() {
        assert_eq!(
            names("{{ secrets.db.password }}:{{ secrets['api-key'].token | upper }}"),
            (vec!["api-key".into(), "db".into()], false)
        );
        assert_eq!(
            names("{% if secrets.a.x == 'y' %}{{ secrets[\"b\"].z }}{% else %}{% for k in secrets.c %}{{ k }}{% endfor %}{% endif %}"),
            (vec!["a".into(), "b".into(), "c".into()], false)
        );
        assert_eq!(
            names("{% set s = secrets.d %}{{ s.user ~ (secrets.e.pw if true else '') }}"),
            (vec!["d".into(), "e".into()], false)
        );
        // Text outside blocks and comments is not read.
        assert_eq!(
            names("secrets.x {# secrets.y #}{% raw %}{{ secrets.z }}{% endraw %}"),
            (vec![], false)
        );
        assert!(names("{{ secrets[name].x }}").1);
        assert!(names("{{ secrets | length }}").1);
        assert!(reads("{{ secrets.a").is_err());
    }
}
