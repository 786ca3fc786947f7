//! The Convene instance: the `convene` binary's library half.
//!
//! This crate is the composition root. It owns the domain (Passports, Spaces, Rooms,
//! memberships, invitations) and its storage, and wires the other crates together:
//! `web` renders pages from view models built here, `media` runs the SFU that Rooms gather
//! in, `governance` counts elections, `migrations` shapes the database.
//!
//! # Layers
//! ```text
//!  doors    http::pages   http::api   cli (convene admin)   http::federation (ActivityPub)
//!              parse input, call one use case, render its result or its error
//!  core     core::{accounts, spaces, rooms, gathering, followers, partners}, governance::*
//!              one function per operation: checks, transaction, page cache, SFU, mail
//!  below    domain (rules and queries), db (+ clock), mail and activitypub (queue), cache,
//!           convene_media::Sfu
//! ```
//! The core takes a [`core::Core`] (database with its clock, settings, mail, SFU, page cache),
//! never the HTTP state, and answers with the domain's [`error::AppError`], which knows no
//! HTTP; [`http::error`] maps it to a status, a page or `application/problem+json`, and the
//! command line to a sentence. Nothing in `core`, `domain`, `governance`, `db`, `mail` or
//! `cache` imports `http` or `app`.
//!
//! Start at [`app::Instance::start`], which connects the database, starts the background
//! workers (the job queue that sends mail, housekeeping, elections, the gathering reconciler)
//! and serves [`http::router`].

pub mod activitypub;
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
pub mod group_commit;
pub mod http;
pub mod jobs;
pub mod mail;
pub mod shutdown;
pub mod single_flight;

pub use config::Settings;
