//! Environment variable names as `env` and `dotenv` write them: what is a
//! name at all, and which names change what a program loads or runs, so that
//! a secret's field cannot set them unless the config allows it.

/// Whether `name` is a shell variable name: a letter or `_`, then letters,
/// digits and `_`.
pub fn is_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Variables that change what a program loads or runs (the dynamic loader's,
/// shells' start-up and parsing, interpreters' module paths and options): a
/// secret's field named like one must not set it in a shell or an app.
const EXEC_VARIABLES: &[&str] = &[
    "PATH",
    "BASH_ENV",
    "ENV",
    "IFS",
    "PS4",
    "PROMPT_COMMAND",
    "SHELLOPTS",
    "BASHOPTS",
    "GCONV_PATH",
    "NODE_OPTIONS",
    "NODE_PATH",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PERL5OPT",
    "PERL5LIB",
    "RUBYOPT",
    "RUBYLIB",
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "_JAVA_OPTIONS",
];

/// Whether setting `name` changes what a program loads or runs: one of
/// [`EXEC_VARIABLES`], or the dynamic loader's (`LD_*`, `DYLD_*`).
pub fn changes_execution(name: &str) -> bool {
    EXEC_VARIABLES.contains(&name) || name.starts_with("LD_") || name.starts_with("DYLD_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loader_shell_and_interpreter_variables_change_execution() {
        for name in [
            "PATH",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "DYLD_INSERT_LIBRARIES",
            "BASH_ENV",
            "NODE_OPTIONS",
            "PYTHONPATH",
            "JAVA_TOOL_OPTIONS",
        ] {
            assert!(changes_execution(name), "{name}");
        }
        for name in ["PATHNAME", "MY_PATH", "LDAP_URL", "password", "path"] {
            assert!(!changes_execution(name), "{name}");
        }
        assert!(is_name("_a1") && !is_name("1a") && !is_name("a-b") && !is_name(""));
    }
}
