//! Rebuilds the crate when a migration file is added or changed:
//! `refinery::embed_migrations!` reads the folder at compile time, which
//! cargo does not track on its own.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
