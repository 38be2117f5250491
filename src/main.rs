//! `p11kms`: the admin command. A thin user of the library: it never reaches around
//! the layers (it reads the same configuration the module does).

use std::process::ExitCode;

const USAGE: &str = "usage: p11kms <command>
commands:
  check-config [FILE]   parse the configuration (default: the module's search order)
                        and list the tokens it defines with their store paths
  version               print the version";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("version") | Some("--version") => {
            println!("p11kms {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("check-config") => {
            let cfg = match args.get(1) {
                Some(p) => p11kms::config::load_file(std::path::Path::new(p)),
                None => p11kms::config::load(None),
            };
            match cfg {
                Ok(c) => {
                    match &c.source {
                        Some(p) => println!("configuration: {}", p.display()),
                        None => println!("configuration: none found, built-in default"),
                    }
                    for (slot, t) in c.token.iter().enumerate() {
                        println!(
                            "slot {slot}: token \"{}\" backend {:?} store {}",
                            t.label,
                            t.backend,
                            t.store_path().display()
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(msg) => {
                    eprintln!("{msg}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
