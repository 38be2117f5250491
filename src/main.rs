//! `p11kms`: the admin command. A thin user of the library: it never reaches around
//! the layers (it reads the same configuration the module does).

use std::process::ExitCode;

const USAGE: &str = "usage: p11kms <command>
commands:
  check-config [FILE]   parse the configuration (default: the module's search order)
                        and list the tokens it defines with their store paths
  rewrap LABEL          (aws, gcp tokens) rewrap every KMS-wrapped data key of token
                        LABEL under the KEK's current key material (AWS ReEncrypt;
                        Cloud KMS Decrypt + Encrypt under the kek's primary version)
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
        Some("rewrap") if args.len() == 2 => rewrap(&args[1]),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// `p11kms rewrap LABEL`: ReEncrypt every KMS-wrapped secret of one token.
fn rewrap(label: &str) -> ExitCode {
    let cfg = match p11kms::config::load(None) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::FAILURE;
        }
    };
    let Some((slot, t)) = cfg.token.iter().enumerate().find(|(_, t)| t.label == label) else {
        eprintln!("p11kms: no token \"{label}\" in the configuration");
        return ExitCode::FAILURE;
    };
    if let Err(msg) = p11kms::log::configure(cfg.log_level, cfg.log_file.as_deref()) {
        eprintln!("{msg}");
    }
    match rewrap_token(slot, t.clone()) {
        Ok(n) => {
            println!("token \"{label}\": {n} data keys rewrapped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("p11kms: token \"{label}\": {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(kms)]
fn rewrap_token(
    slot: usize,
    t: p11kms::config::TokenConfig,
) -> Result<usize, p11kms::error::Error> {
    p11kms::token::Token::open(slot as _, t)?.rewrap_all()
}

#[cfg(not(kms))]
fn rewrap_token(
    _slot: usize,
    _t: p11kms::config::TokenConfig,
) -> Result<usize, p11kms::error::Error> {
    Err(p11kms::error::Error::msg(
        cryptoki_sys::CKR_FUNCTION_NOT_SUPPORTED,
        "this build has no KMS backend (Cargo features `aws`, `gcp`)",
    ))
}
