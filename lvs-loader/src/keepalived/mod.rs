//! keepalived's side of the recipe: [`parse`] reads keepalived.conf like keepalived does,
//! [`check`] cross-checks it (and the peer director's vips.toml) against a vips.toml.

pub mod check;
pub mod parse;
