// This file exists so that lvs-loader can build-depend on this crate (see aya-template);
// the program itself is the `lvs-ebpf` binary in main.rs.
#![no_std]
