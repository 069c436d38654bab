//! Lays out the functions a steady sidecar and proxy run together in the
//! binary: `hot-symbols.txt` (written by `bench/hot.sh`) is the linker's
//! symbol ordering file. The kernel maps code in 64 KiB chunks, so a few
//! hundred functions spread over a 19 MB binary keep megabytes of it
//! resident; together they fit in a few chunks. Only for the `ramsecrets`
//! binary on x86_64-unknown-linux-gnu, where Rust links with rust-lld by
//! default; names the build does not have (another profile, other
//! dependency versions) are skipped.

fn main() {
    println!("cargo:rerun-if-changed=hot-symbols.txt");
    if std::env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={dir}/hot-symbols.txt");
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
