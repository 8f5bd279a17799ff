//! Hand-built Ethernet frames: the builders live in the loader library
//! (`lvs_loader::frames`, which `import --verify` uses too) and are re-exported here so
//! the tests keep their paths; plus a panicking MAC parser for test literals.

pub use lvs_loader::frames::*;

pub fn parse_mac(s: &str) -> [u8; 6] {
    lvs_loader::config::parse_mac(s).unwrap_or_else(|e| panic!("bad MAC in test: {e}"))
}
