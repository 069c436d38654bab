//! Go's fmt as `bao agent` printed it (Go 1.25's fmt, OpenBao 2.7.2); the
//! byte-for-byte comparison with `bao agent` itself is tests/compat_templates.rs.

use std::sync::Arc;

use super::*;

fn numbers_and(values: &[(&str, bool)]) -> (Numbers, Vec<Value>) {
    let mut numbers = Numbers::default();
    let values = values
        .iter()
        .map(|(text, number)| {
            let s: Arc<str> = Arc::from(*text);
            if *number {
                numbers.add(&s);
            }
            Value::String(s)
        })
        .collect();
    (numbers, values)
}

#[test]
fn lists_and_maps_take_the_verb_element_by_element() {
    let (numbers, v) = numbers_and(&[("x", false), ("2", true), ("1.5", true)]);
    let list = Value::List(vec![v[0].clone(), v[1].clone(), Value::Nil, Value::Bool(true)].into());
    let map = Value::Map(Arc::new(
        [
            (Arc::from("a"), Value::Nil),
            (Arc::from("b"), Value::Bool(true)),
            (Arc::from("c"), v[2].clone()),
        ]
        .into_iter()
        .collect(),
    ));
    let f = |format: &str, args: &[Value]| sprintf(format, args, &numbers);
    let l = std::slice::from_ref(&list);
    assert_eq!(f("%q", l), r#"["x" "2" <nil> %!q(bool=true)]"#);
    assert_eq!(f("%v", l), "[x 2 <nil> true]");
    assert_eq!(f("%s", l), "[x 2 <nil> %!s(bool=true)]");
    assert_eq!(
        f("%d", l),
        "[%!d(string=x) %!d(json.Number=2) <nil> %!d(bool=true)]"
    );
    assert_eq!(f("%x", l), "[78 32 <nil> %!x(bool=true)]");
    assert_eq!(f("%5v|", l), "[    x     2 <nil>  true]|");
    assert_eq!(f("%-5s|", l), "[x     2     <nil> %!s(bool=true )]|");
    assert_eq!(
        f("%q", std::slice::from_ref(&map)),
        r#"map["a":<nil> "b":%!q(bool=true) "c":"1.5"]"#
    );
    assert_eq!(
        f(
            "%q %v",
            &[Value::List(vec![].into()), Value::Map(Arc::default())]
        ),
        "[] map[]"
    );
}

#[test]
fn scalars_bad_verbs_and_argument_counts_are_written_as_go_writes_them() {
    let (numbers, v) = numbers_and(&[("5432", true), ("p<a&s>s \"w\"\u{e9}", false)]);
    let f = |format: &str, args: &[Value]| sprintf(format, args, &numbers);
    assert_eq!(f("%d", &v[..1]), "%!d(json.Number=5432)");
    assert_eq!(
        f("%v %s %q", &[v[0].clone(), v[0].clone(), v[0].clone()]),
        "5432 5432 \"5432\""
    );
    assert_eq!(f("%q", &v[1..]), r#""p<a&s>s \"w\"é""#);
    assert_eq!(
        f(
            "%10q|%-10q|",
            &[Value::String("a".into()), Value::String("b".into())]
        ),
        "       \"a\"|\"b\"       |"
    );
    assert_eq!(
        f("%q %v %d", &[Value::Nil, Value::Nil, Value::Nil]),
        "%!q(<nil>) <nil> %!d(<nil>)"
    );
    assert_eq!(
        f(
            "%q %v %t",
            &[Value::Bool(true), Value::Bool(true), Value::Bool(true)]
        ),
        "%!q(bool=true) true true"
    );
    assert_eq!(f("%s %s", &[Value::String("a".into())]), "a %!s(MISSING)");
    assert_eq!(
        f(
            "%s",
            &[
                Value::String("a".into()),
                Value::String("b".into()),
                Value::Int(3)
            ]
        ),
        "a%!(EXTRA string=b, int=3)"
    );
    assert_eq!(
        f(
            "%q %x %05d %+d",
            &[
                Value::Int(65),
                Value::Int(255),
                Value::Int(-42),
                Value::Int(5)
            ]
        ),
        "'A' ff -0042 +5"
    );
    assert_eq!(
        f(
            "%.2s|%6.2f|%%",
            &[Value::String("héllo".into()), Value::Float(3.25159)]
        ),
        "hé|  3.25|%"
    );
}

#[test]
fn floats_are_formatted_as_strconv_does() {
    let numbers = Numbers::default();
    let f = |format: &str, x: f64| sprintf(format, &[Value::Float(x)], &numbers);
    assert_eq!(f("%v", 1.0), "1");
    assert_eq!(f("%v", 1e21), "1e+21");
    assert_eq!(f("%v", 1e6), "1e+06");
    assert_eq!(f("%v", 123456.0), "123456");
    assert_eq!(f("%v", 0.00001), "1e-05");
    assert_eq!(f("%v", 0.0001), "0.0001");
    assert_eq!(f("%d", 3.0), "%!d(float64=3)");
    assert_eq!(f("%g %f %e", 2.5), "2.5 %!f(MISSING) %!e(MISSING)");
    assert_eq!(f("%e", 2.5), "2.500000e+00");
    assert_eq!(f("%.3g", 1234.5678), "1.23e+03");
    assert_eq!(f("%.3g", 0.0), "0");
    assert_eq!(f("%08.3f", -3.25159), "-003.252");
    assert_eq!(f("%+.1e", 123456.0), "+1.2e+05");
    assert_eq!(f("%v", -0.0), "-0");
}

#[test]
fn formats_outside_the_subset_are_refused() {
    for good in [
        "%s",
        "%-10s=%q",
        "%05.2f %%",
        "%+d %x %X %t %v %e %g",
        "no verbs",
    ] {
        assert_eq!(check(good), Ok(()), "{good}");
    }
    for (bad, why) in [
        ("%c", "`%c`"),
        ("%[1]s", "`%[`"),
        ("%*d", "`%*`"),
        ("%#v", "flag `#`"),
        ("% d", "flag ` `"),
        ("%+q", "%+q"),
        ("50%", "ends in `%`"),
    ] {
        let e = check(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
}
