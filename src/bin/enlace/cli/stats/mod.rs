//! `enlace stats`: how statistical tables are printed and drawn.

mod command;
pub(crate) mod html;
mod output;
pub(crate) mod render;

pub(crate) use command::decode;
pub use command::{StatsCommand, stats};

#[cfg(test)]
mod fixtures;
