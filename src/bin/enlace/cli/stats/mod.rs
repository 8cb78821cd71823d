//! `enlace stats`: how statistical tables are printed and drawn.

pub(crate) mod html;
pub(crate) mod render;

#[cfg(test)]
mod fixtures;
