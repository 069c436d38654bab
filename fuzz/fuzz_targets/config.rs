//! The config, parsed and validated (`Config::parse`) from any text. Beyond
//! not panicking: every file an accepted config writes stays inside
//! `output.dir`, no two writes go to one file or to a file another one
//! needs as its directory, and `output.state_dir` is not under `output.dir`.
#![no_main]

use std::collections::BTreeSet;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ramsecrets::config::Config;
use ramsecrets_fuzz::{lexical, stays_inside};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Template files are read relative to here: a directory with none in it.
    let Ok(config) = Config::parse(text, Path::new("/nonexistent/ramsecrets-fuzz")) else {
        return;
    };
    let mut files = BTreeSet::new();
    let written = config
        .secrets
        .iter()
        .flat_map(|s| s.files())
        .chain(config.templates.iter().map(|t| t.file.clone()));
    for file in written {
        assert!(
            stays_inside(&file),
            "accepted file {file:?} leaves output.dir"
        );
        assert!(files.insert(file.clone()), "two writes to {file:?}");
    }
    for file in &files {
        for dir in Path::new(file).ancestors().skip(1) {
            let dir = dir.to_string_lossy();
            assert!(
                dir.is_empty() || !files.contains(dir.as_ref()),
                "{file:?} needs {dir:?} as a directory, which is written as a file"
            );
        }
    }
    if let Some(out) = &config.output {
        if let Some(state) = &out.state_dir {
            assert!(
                !lexical(state).starts_with(lexical(&out.dir)),
                "state_dir {state:?} accepted under output.dir {:?}",
                out.dir
            );
        }
    }
});
