//! Tests of agent templates: what `bao agent` writes for the same template
//! and read, and what the check refuses.

use super::*;

const KV2: &str = r#"{"data":{"password":"p<&>w","username":"app","port":5432},
    "metadata":{"created_time":"2026-12-07T02:00:00Z","custom_metadata":null,"deletion_time":"","destroyed":false,"version":1}}"#;

fn run(text: &str) -> String {
    let out = render(text, "secret/data/app", &SecretBytes::copy_from(KV2)).unwrap();
    out.expose_str().unwrap().to_owned()
}

#[test]
fn the_default_template_prints_data_as_go_prints_maps() {
    assert_eq!(
        run(&default_template("secret/data/app")),
        "data: map[password:p<&>w port:5432 username:app]\n\
         metadata: map[created_time:2026-12-07T02:00:00Z custom_metadata:<nil> deletion_time: destroyed:false version:1]\n"
    );
}

#[test]
fn the_subset_renders() {
    let t = r#"{{- with secret "secret/data/app" -}}
postgres://{{ .Data.data.username }}:{{ .Data.data.password }}@db:{{ .Data.data.port }}/app
{{ if eq .Data.data.username "app" }}yes{{ else }}no{{ end }} v{{ .Data.metadata.version }}
{{ range $k, $v := .Data.data }}{{ $k }}={{ $v | printf "%q" }};{{ end }}
{{ index .Data.data "username" | base64Encode }} {{ "YXBw" | base64Decode }} [{{ "  x \n" | trimSpace }}]
{{ .Data.data | toJSON }}
{{ .Data.data.missing }}
{{- end }}"#;
    assert_eq!(
        run(t),
        "postgres://app:p<&>w@db:5432/app\nyes v1\n\
         password=\"p<&>w\";port=\"5432\";username=\"app\";\n\
         YXBw app [x]\n\
         {\"password\":\"p\\u003c\\u0026\\u003ew\",\"port\":5432,\"username\":\"app\"}\n<no value>"
    );
}

#[test]
fn to_json_pretty_indents_as_go() {
    let t = r#"{{ with secret "secret/data/app" }}{{ .Data.data | toJSONPretty }}{{ end }}"#;
    assert_eq!(
        run(t),
        "{\n  \"password\": \"p\\u003c\\u0026\\u003ew\",\n  \"port\": 5432,\n  \"username\": \"app\"\n}"
    );
}

#[test]
fn constructs_outside_the_subset_are_refused_with_their_line() {
    let cases = [
        (
            "{{ with secret \"secret/data/app\" }}\n{{ pkiCert \"x\" }}{{ end }}",
            "line 2: function `pkiCert` is not supported",
        ),
        (
            "{{ with secret \"secret/data/other\" }}{{ end }}",
            "line 1: secret \"secret/data/other\" is not supported",
        ),
        (
            "{{ with secret \"secret/data/app\" \"a=b\" }}{{ end }}",
            "line 1: secret is not supported",
        ),
        (
            "{{ $p := \"secret/data/app\" }}{{ with secret $p }}{{ end }}",
            "line 1: secret is not supported",
        ),
        (
            "\n\n{{ with secret \"secret/data/app\" }}{{ .LeaseID }}{{ end }}",
            "line 3: .LeaseID is not supported",
        ),
        (
            "{{ define \"x\" }}a{{ end }}{{ template \"x\" }}",
            "define \"x\"",
        ),
        (
            "{{ with secret \"secret/data/app\" }}{{ call .Data }}{{ end }}",
            "function `call`",
        ),
        ("{{ with secret \"secret/data/app\" }", "unexpected"),
        (
            "{{ with secret \"secret/data/app\" }}\n{{ 1e21 }}{{ end }}",
            "line 2: the number 1e+21 is not supported",
        ),
        (
            "{{ with secret \"secret/data/app\" }}{{ printf \"%c\" 65 }}{{ end }}",
            "printf \"%c\" is not supported: printf verb `%c`",
        ),
        (
            "{{ with secret \"secret/data/app\" }}{{ printf .Data.f 1 }}{{ end }}",
            "printf is not supported: its format must be a quoted string",
        ),
    ];
    for (t, expected) in cases {
        let e = check(t, "/secret/data/app/")
            .map_err(|e| e.to_string())
            .err()
            .unwrap_or_else(|| panic!("{t}: accepted"));
        assert!(e.contains(expected), "{t}: {e}");
    }
    check(&default_template("secret/data/app"), "secret/data/app").unwrap();
    check("{{ 1.5 }} {{ 1e3 }} {{ printf \"%v\" 1e21 }}", "p").unwrap();
}

#[test]
fn failures_name_no_value() {
    let t =
        r#"{{ with secret "secret/data/app" }}{{ .Data.data.password | base64Decode }}{{ end }}"#;
    let e = render(t, "secret/data/app", &SecretBytes::copy_from(KV2)).unwrap_err();
    assert_eq!(e.to_string(), "template failed: base64Decode: not base64");
    let t =
        r#"{{ with secret "secret/data/app" }}{{ range .Data.data.password }}{{ end }}{{ end }}"#;
    let e = render(t, "secret/data/app", &SecretBytes::copy_from(KV2)).unwrap_err();
    assert!(!e.to_string().contains("p<&>w"), "{e}");
}

#[test]
fn render_takes_any_input() {
    for (t, d) in [
        ("{{", "{}"),
        ("{{ . }}", "not json"),
        ("{{ with secret \"p\" }}{{ .Data }}{{ end }}", "[1,2]"),
    ] {
        let _ = render(t, "p", &SecretBytes::copy_from(d));
    }
    assert_eq!(
        render(
            "{{ with secret \"p\" }}{{ .Data }}{{ end }}",
            "p",
            &SecretBytes::copy_from("[1,\"a\",null]")
        )
        .unwrap()
        .expose(),
        b"[1 a <nil>]"
    );
}
