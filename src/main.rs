//! The `portico` command: `run` serves, `check` validates a configuration,
//! `hash-key` and `hash-password` make the credential hashes the
//! configuration stores.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use portico::server::{self, RunFlags};

/// mimalloc instead of glibc's malloc. A proxied request makes and frees
/// dozens of small, short-lived allocations (header maps, buffers, Pingora's
/// session futures); under glibc those went through the arena's slow path and
/// its consolidation, about a fifth of the user-space instructions of a
/// request. mimalloc's v2 line counted fewer instructions per request than
/// its v3 (the crate's default) and than jemalloc; perf/RESULTS.md has the
/// figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "portico", version, about = "An API gateway on Pingora")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the gateway.
    Run {
        /// The configuration file.
        #[arg(short, long, default_value = "conf/portico.yaml")]
        conf: PathBuf,
        /// Take over the listening sockets of a running Portico (graceful upgrade).
        #[arg(short, long)]
        upgrade: bool,
        /// Run in the background.
        #[arg(short, long)]
        daemon: bool,
        /// Check that the server can start with this configuration, then exit.
        #[arg(short, long)]
        test: bool,
    },
    /// Validate a configuration file and report every problem in it.
    Check {
        #[arg(short, long, default_value = "conf/portico.yaml")]
        conf: PathBuf,
    },
    /// Print the `sha256:` hash of an API key, for `consumers[].credentials.api_keys`.
    /// The key is read from standard input unless `--key` is given.
    HashKey {
        /// The key (it then shows in the shell history and process list).
        #[arg(long)]
        key: Option<String>,
    },
    /// Print an argon2id hash of a password, for `credentials.basic.password_hash`.
    /// The password is read from standard input unless `--password` is given.
    HashPassword {
        /// The password (it then shows in the shell history and process list).
        #[arg(long)]
        password: Option<String>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run {
            conf,
            upgrade,
            daemon,
            test,
        } => {
            match server::run(
                &conf,
                RunFlags {
                    upgrade,
                    daemon,
                    test,
                },
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(problems) => report(&conf, &problems),
            }
        }
        Command::Check { conf } => {
            let checked = portico::config::load_file(&conf)
                .map_err(|e| e.0.iter().map(|e| e.to_string()).collect::<Vec<_>>())
                .and_then(server::compile);
            match checked {
                Ok(snapshot) => {
                    let c = &snapshot.config;
                    println!(
                        "{}: ok ({} listeners, {} routes, {} upstreams)",
                        conf.display(),
                        c.listeners.len(),
                        c.routes.len(),
                        c.upstreams.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(problems) => report(&conf, &problems),
            }
        }
        Command::HashKey { key } => hash_key(key),
        Command::HashPassword { password } => hash_password(password),
    }
}

/// The secret from the flag, or standard input without its line ending.
fn secret_input(flag: Option<String>, what: &str) -> Result<String, ExitCode> {
    let text = match flag {
        Some(text) => text,
        None => {
            let mut text = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                eprintln!("cannot read the {what} from standard input: {e}");
                return Err(ExitCode::from(2));
            }
            text.trim_end_matches(['\n', '\r']).to_owned()
        }
    };
    if text.is_empty() {
        eprintln!("the {what} is empty");
        return Err(ExitCode::from(2));
    }
    Ok(text)
}

fn hash_key(key: Option<String>) -> ExitCode {
    match secret_input(key, "key") {
        Ok(key) => {
            println!("{}", portico::auth::api_key::hash_line(key.as_bytes()));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn hash_password(password: Option<String>) -> ExitCode {
    let password = match secret_input(password, "password") {
        Ok(password) => password,
        Err(code) => return code,
    };
    match portico::auth::basic::hash_password(&password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot hash the password: {e}");
            ExitCode::from(1)
        }
    }
}

fn report(conf: &std::path::Path, problems: &[String]) -> ExitCode {
    eprintln!(
        "{}: {} problem(s), nothing was started:",
        conf.display(),
        problems.len()
    );
    for p in problems {
        eprintln!("  {p}");
    }
    ExitCode::from(2)
}
