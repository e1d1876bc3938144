//! `edgeflags-sw-config FILE...`: checks service-worker configurations at build time, with
//! every check the worker itself leaves out (unknown fields, rules between fields). Prints
//! `ok: FILE` per good file; exit 1 with `error: FILE: REASON` on stderr for a bad one, 2 for
//! unusable arguments or unreadable files. `scripts/build-pwa.sh` runs it on the
//! configuration it embeds in `sw.js` and `sw.mjs`.

use std::process::ExitCode;

use edgeflags_pwa::config::SwConfig;

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() || files.iter().any(|f| f.starts_with('-')) {
        eprintln!("usage: edgeflags-sw-config FILE...");
        return ExitCode::from(2);
    }
    let mut status = ExitCode::SUCCESS;
    for file in &files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {file}: {e}");
                return ExitCode::from(2);
            }
        };
        match SwConfig::from_json(&text) {
            Ok(_) => println!("ok: {file}"),
            Err(e) => {
                eprintln!("error: {file}: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
