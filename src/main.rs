//! The `enlace` binary: parses the command line and hands over to the
//! library (`enlace::cli`).

#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    enlace::cli::run(enlace::cli::Cli::parse())
}
