//! Print the streaming contract that serving-rs/src/streaming.rs embeds when compiled here.

// Only `STREAMING.describe()` is used: the rest of the scorer's contract module is not dead there.
#![allow(dead_code)]

#[path = "../src/schema.rs"]
mod schema;
#[path = "../src/streaming.rs"]
mod streaming;

fn main() {
    println!("{}", streaming::STREAMING.describe());
}
