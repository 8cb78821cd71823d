//! Tests that run the built `enlace` binary, as an operator or an agency
//! would: its commands, their output and exit codes, a node killed for
//! real. Where a command needs a federation to talk to, its nodes run in
//! this process (`enlace::testing::Sandbox`).
//!
//! One test binary rather than one per file: each binary links the whole
//! library, so the suite builds much faster as a few. The tests run as
//! threads of one process, so none may change anything process-wide
//! (environment, current directory, fixed ports): a command's working
//! directory and environment are set on the child, never on this process.

#[path = "../common/mod.rs"]
mod common;

mod audit;
mod cert_cli;
mod cli;
mod cli_import;
mod cli_output;
mod cli_pipe;
mod cli_roster;
mod cli_stats;
mod cli_tls;
mod cli_watch;
mod crash;
mod damage;
mod doctor;
mod interop;
mod recovery;
mod roster_kill;
