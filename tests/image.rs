//! `scripts/image`, the images of the local node, built without a registry: the ramsecrets
//! image agrees with the Dockerfile (user, entrypoint, command, binary path, no shell),
//! and the same inputs give the same digests.

mod common;

use std::path::Path;
use std::process::Command;

use common::{repo, scratch};
use serde_json::Value;

/// Runs scripts/image on the test build of the binary; its lines: (name, digest, file).
fn build(out: &Path) -> Vec<(String, String, String)> {
    let o = Command::new("bash")
        .arg(repo().join("scripts/image"))
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_ramsecrets"))
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "scripts/image: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

/// Member `path` of tar archive `archive`.
fn member(archive: &Path, path: &str) -> Vec<u8> {
    let o = Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{path} in {}: {}",
        archive.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn blob(archive: &Path, digest: &str) -> Vec<u8> {
    member(
        archive,
        &format!("./blobs/sha256/{}", digest.trim_start_matches("sha256:")),
    )
}

/// The JSON array after `instruction` on its line of the Dockerfile.
fn dockerfile(instruction: &str) -> String {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix(&format!("{instruction} ")))
        .next_back()
        .unwrap_or_else(|| panic!("no {instruction} in the Dockerfile"))
        .trim()
        .to_string()
}

#[test]
fn the_image_agrees_with_the_dockerfile_and_is_reproducible() {
    let (a, b) = (scratch(), scratch());
    let first = build(a.path());
    let names: Vec<&str> = first.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "localhost/ramsecrets:local",
            "localhost/app:busybox",
            "localhost/pause:local"
        ]
    );
    // Same inputs, same digests.
    let digests = |v: &[(String, String, String)]| -> Vec<String> {
        v.iter().map(|(_, d, _)| d.clone()).collect()
    };
    assert_eq!(digests(&first), digests(&build(b.path())));

    let archive = Path::new(&first[0].2);
    let index: Value = serde_json::from_slice(&member(archive, "./index.json")).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["annotations"]["io.containerd.image.name"],
        "localhost/ramsecrets:local"
    );
    assert_eq!(entry["digest"].as_str(), Some(first[0].1.as_str()));
    let manifest: Value =
        serde_json::from_slice(&blob(archive, entry["digest"].as_str().unwrap())).unwrap();
    let config: Value = serde_json::from_slice(&blob(
        archive,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let c = &config["config"];
    assert_eq!(c["User"], dockerfile("USER"));
    let entrypoint: Value = serde_json::from_str(&dockerfile("ENTRYPOINT")).unwrap();
    assert_eq!(c["Entrypoint"], entrypoint);
    let cmd: Value = serde_json::from_str(&dockerfile("CMD")).unwrap();
    assert_eq!(c["Cmd"], cmd);

    // The layer: the binary where the Dockerfile copies it, mode 0555, the same bytes; no shell.
    let copy = dockerfile("COPY --from=build /out/ramsecrets");
    assert_eq!(copy, entrypoint[0].as_str().unwrap());
    let layer_dir = scratch();
    let layer = layer_dir.path().join("layer.tar");
    std::fs::write(
        &layer,
        blob(archive, manifest["layers"][0]["digest"].as_str().unwrap()),
    )
    .unwrap();
    let listing = Command::new("tar")
        .arg("-tvf")
        .arg(&layer)
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    let binary_line = listing
        .lines()
        .find(|l| l.ends_with(&format!(".{copy}")))
        .unwrap_or_else(|| panic!("no {copy} in the layer:\n{listing}"));
    assert!(binary_line.starts_with("-r-xr-xr-x 0/0 "), "{binary_line}");
    assert_eq!(
        member(&layer, &format!(".{copy}")),
        std::fs::read(env!("CARGO_BIN_EXE_ramsecrets")).unwrap()
    );
    for shell in ["./bin/sh", "./usr/bin/sh", "./bin/bash", "./bin/busybox"] {
        assert!(
            !listing.lines().any(|l| l.ends_with(shell)),
            "{shell} in the image:\n{listing}"
        );
    }
    let passwd = String::from_utf8(member(&layer, "./etc/passwd")).unwrap();
    assert!(passwd.contains(":65532:65532:"), "{passwd}");
}
