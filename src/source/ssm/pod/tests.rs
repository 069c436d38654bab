use serde_json::json;

use crate::source::PodAddress;

#[test]
fn ssm_names_one_parameter_by_name_or_arn() {
    for name in [
        "/app/db/password",
        "plain",
        "arn:aws:ssm:eu-west-1:1:parameter/app/db",
    ] {
        let a = PodAddress::parse(&format!("ssm:{name}")).unwrap();
        assert_eq!(a.kind(), "Parameter Store");
        assert!(!a.needs_token());
        assert_eq!(a.config(), ("parameter", &json!(name)));
    }
}

#[test]
fn ssm_path_names_every_parameter_under_a_path() {
    let a = PodAddress::parse("ssm-path: /app/flags ").unwrap();
    assert_eq!(a.kind(), "Parameter Store");
    assert_eq!(a.config(), ("parameters_by_path", &json!("/app/flags")));
}

#[test]
fn bad_names_and_paths_say_the_form() {
    for (given, says) in [
        ("ssm:", "expected ssm:NAME"),
        ("ssm:a b", "ssm:NAME: `a b` is not a parameter name"),
        ("ssm:a//b", "is not a parameter name"),
        ("ssm-path:", "expected ssm-path:PATH"),
        ("ssm-path:app", "ssm-path:PATH: `app` is not a path"),
        ("ssm-path:/a b", "is not a path"),
    ] {
        let why = PodAddress::parse(given).unwrap_err();
        assert!(why.contains(says), "{given}: {why}");
    }
    // An annotation has no `version` key to point to.
    let why = PodAddress::parse("ssm:/app/db:3").unwrap_err();
    assert!(!why.contains("version"), "{why}");
}

#[test]
fn messages_list_the_schemes() {
    let why = PodAddress::parse("nothing").unwrap_err();
    assert!(
        why.ends_with("aws:SECRET_ID, ssm:NAME or ssm-path:PATH"),
        "{why}"
    );
    let why = PodAddress::parse("smm:x").unwrap_err();
    assert!(why.ends_with("aws, ssm or ssm-path"), "{why}");
}
