//! The Convene instance: the `convene` binary's library half.
//!
//! This crate is the composition root. It owns the domain (Passports, Spaces, Rooms,
//! memberships, invitations) and its storage, and wires the other crates together:
//! `web` renders pages from view models built here, `media` runs the SFU that Rooms gather
//! in, `governance` counts elections, `migrations` shapes the database.
//!
//! Start at [`app::Instance::start`], which connects the database, starts the background
//! workers (mail outbox, housekeeping) and serves [`http::router`].

pub mod app;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod db;
pub mod domain;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod governance;
pub mod http;
pub mod mail;
pub mod shutdown;

pub use config::Settings;
