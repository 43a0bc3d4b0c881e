//! The `portico` command: `run` serves, `check` validates a configuration.

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
