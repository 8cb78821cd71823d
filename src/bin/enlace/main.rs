//! The `enlace` binary: the command tree (`cli`), the benchmarks (`bench`)
//! and the demo, on top of the `enlace` library; `failure` prints what
//! went wrong and chooses the exit code.
//!
//! Nothing in the library imports from here: the tools are clients of the
//! node, like an agency's own system would be.

#![forbid(unsafe_code)]

mod bench;
mod cli;
mod failure;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // NOTE: Rust ignores SIGPIPE, so `enlace alert list | head` would panic
    // on the first write after `head` exits. A closed stdout is how a
    // reader says "enough": end quietly instead. (Restoring SIGPIPE would
    // need unsafe code.)
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default_hook(info);
    }));
    cli::run(cli::Cli::parse())
}
