//! keepalived
