//! Vault Agent templates (`format: go-template`, what pods written for
//! vault-k8s get) rendered by `ramsecrets init` and by `bao agent` from the
//! same templates against the same OpenBao: the files must be the same,
//! byte for byte. Covers vault-k8s's default template on KV v1 and v2, the
//! documentation's database URL, every function of the subset, Go's `fmt`
//! through `printf` (each verb and flag, on lists, maps, nulls, numbers and
//! constants), and numbers kept as the server wrote them (`1.50`, `1e3`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// (file, path as annotated, template); `None`: vault-k8s's default template.
const CASES: &[(&str, &str, Option<&str>)] = &[
    ("default-kv2", "secret/data/app/db", None),
    ("default-kv1", "kv1/app/db", None),
    ("default-shimmed", "secret/app/db", None),
    (
        "database-url",
        "secret/data/app/db",
        Some("{{- with secret \"secret/data/app/db\" -}}\npostgres://{{ .Data.data.username }}:{{ .Data.data.password }}@postgres:5432/wizard\n{{- end -}}\n"),
    ),
    (
        "kv1-env",
        "kv1/app/db",
        Some("{{ with secret \"kv1/app/db\" }}\n{{- range $k, $v := .Data }}\nexport {{ $k | printf \"%-10s\" }}={{ printf \"%v\" $v }}\n{{- end }}\n{{ end }}"),
    ),
    (
        "functions",
        "secret/data/app/db",
        Some(r#"{{ with secret "secret/data/app/db" -}}
{{ .Data.data | toJSON }}
{{ .Data.data | toJSONPretty }}
{{ .Data.metadata.version }} {{ index .Data.data "port" }} {{ .Data.data.nested }} {{ .Data.data.list }}
{{ if eq .Data.data.username "app" }}app{{ else }}other{{ end }} {{ if .Data.data.missing }}x{{ else }}none{{ end }} {{ .Data.data.missing }}
{{ .Data.data.password | base64Encode }} {{ .Data.data.b64 | base64Decode }} [{{ .Data.data.padded | trimSpace }}]
{{ printf "%s=%v %d %q" .Data.data.username .Data.data.port 42 .Data.data.password }}
{{- end }}
"#),
    ),
    (
        "printf",
        "secret/data/app/db",
        Some(r#"{{ with secret "secret/data/app/db" -}}
{{ printf "%q|%v|%s|%d|%x|%5v|%-5s|" .Data.data.list .Data.data.list .Data.data.list .Data.data.list .Data.data.list .Data.data.list .Data.data.list }}
{{ printf "%q|%v|%d|%t" .Data.data.nested .Data.data.nested .Data.data.port .Data.data.nested.b }}
{{ printf "%q %v %d %5v|" .Data.data.nested.a .Data.data.nested.a .Data.data.nested.a .Data.data.nested.a }}
{{ printf "%10q|%-10q|%.3q|%05s|%X|%.1x" .Data.data.username "b" .Data.data.password "ab" .Data.data.password "hé" }}
{{ 1.0 }} {{ 1.5 }} {{ 42 }} {{ printf "%v %v %d %v %g %f %e" 1e21 0.00001 3.0 2.5 2.5 2.5 2.5 }}
{{ printf "%.3g|%08.3f|%+.1e|%-8.2f|%8.2e|%g|%g" 1234.5678 -3.14159 123456.0 2.5 0.000123 100000.0 1000000.0 }}
{{ printf "%q %x %05d %+d %.3d|%5.0d|%-5d|%X|%6t|" 65 255 -42 5 7 0 3 -255 false }}
{{ printf "%s %s" "a" }} {{ printf "%s" "a" "b" 3 .Data.data.list .Data.data.port .Data.data.nested.a }} {{ printf "100%% %v" .Data.data.port }}
{{ print 1 2 "a" "b" 3 .Data.data.port .Data.data.port }} {{ 1.5 | toJSON }} {{ 42 | toJSON }} {{ len .Data.data.port }}
{{- end }}
"#),
    ),
    (
        "numbers",
        "kv1/app/numbers",
        Some(r#"{{ with secret "kv1/app/numbers" -}}
{{ range $k, $v := .Data }}{{ $k }}: {{ $v }} {{ printf "%q" $v }}
{{ end }}{{ .Data | toJSON }}
{{ .Data | toJSONPretty }}
{{- end }}
"#),
    ),
];

/// KV v1 keeps a number as it was written: Vault Agent's templates then write it so.
const NUMBERS: &str = r#"{"a":1.0,"b":1.50,"c":1e3,"d":12345678901234567890123,"e":0.000001,"f":-0.0,"g":1E+2,"h":5,"l":["x",2,1.0,null,true],"m":{"k":1.0}}"#;

/// Runs `bao agent` once (token auth, `exit_after_auth`) with `templates`
/// (file, contents) into `out`.
fn bao_agent(bao: &Bao, work: &Path, out: &Path, templates: &[(String, String)]) {
    let token = file(work, "agent-token", &bao.token);
    let mut hcl = format!(
        "vault {{ address = \"{}\" }}\nexit_after_auth = true\nauto_auth {{\n  method \"token_file\" {{\n    config = {{ token_file_path = \"{}\" }}\n  }}\n}}\n",
        bao.addr,
        token.display()
    );
    for (name, contents) in templates {
        let contents = serde_json::to_string(contents).unwrap();
        hcl += &format!(
            "template {{\n  destination = \"{}\"\n  contents = {contents}\n}}\n",
            out.join(name).display()
        );
    }
    let config = file(work, "agent.hcl", &hcl);
    let mut child = Command::new(bao_bin())
        .args(["agent", "-config"])
        .arg(&config)
        .env_remove("VAULT_ADDR")
        .env_remove("BAO_ADDR")
        .stdout(std::fs::File::create(work.join("agent.log")).unwrap())
        .stderr(std::fs::File::create(work.join("agent.err")).unwrap())
        .spawn()
        .expect("cannot start bao agent");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("bao agent did not exit within 120s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(work.join("agent.err")).unwrap_or_default();
    assert!(status.success(), "bao agent: {status}\n{log}");
}

#[test]
fn files_match_bao_agent_byte_for_byte() {
    let bao = Bao::start();
    bao.api(
        "POST",
        "sys/mounts/kv1",
        json!({ "type": "kv", "options": { "version": "1" } }),
    );
    let data = json!({
        "username": "app",
        "password": "p<a&s>s \"w\"\u{e9}",
        "port": 5432,
        "nested": { "b": true, "a": null, "c": 1.5 },
        "list": ["x", 2],
        "b64": "aGVsbG8gd29ybGQ=",
        "padded": " \t padded \n",
    });
    bao.kv2_put("app/db", data.clone());
    bao.api("POST", "kv1/app/db", data);
    let numbers = reqwest::blocking::Client::new()
        .post(format!("{}/v1/kv1/app/numbers", bao.addr))
        .header("X-Vault-Token", &bao.token)
        .body(NUMBERS)
        .send()
        .unwrap();
    assert!(numbers.status().is_success(), "{}", numbers.status());

    let work = scratch();
    let out = Tmpfs::new("4m");
    let templates: Vec<(String, String)> = CASES
        .iter()
        .map(|(name, path, t)| {
            let t = t.map_or_else(|| default_template(path), str::to_owned);
            (name.to_string(), t)
        })
        .collect();
    let token = file(work.path(), "token", &bao.token);
    let mut config = Config::new()
        .source(json!({ "vault": { "address": bao.addr, "auth": { "token_file": token } } }))
        .output(out.path());
    for ((name, path, _), (_, template)) in CASES.iter().zip(&templates) {
        config = config.secret(json!({
            "name": name,
            "read": path,
            "format": "go-template",
            "template": template,
        }));
    }
    let o = init(work.path(), &config.yaml(), &[]);
    assert_exit(&o, 0);

    let agent_out = scratch();
    bao_agent(&bao, work.path(), agent_out.path(), &templates);
    for (name, _, _) in CASES {
        let ours = std::fs::read(out.path().join(name)).unwrap();
        let theirs = std::fs::read(agent_out.path().join(name)).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "{name}: ramsecrets (left) and bao agent (right) differ"
        );
        assert_eq!(ours, theirs, "{name}");
    }
}

/// vault-k8s's default template (`DefaultMapTemplate`).
fn default_template(path: &str) -> String {
    format!("{{{{ with secret \"{path}\" }}}}{{{{ range $k, $v := .Data }}}}{{{{ $k }}}}: {{{{ $v }}}}\n{{{{ end }}}}{{{{ end }}}}")
}
