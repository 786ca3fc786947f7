//! Convene's web pages: plain view models in, server-rendered HTML out.
//!
//! This crate draws every page of the web UI with maud and ships the one stylesheet and the
//! favicon. It knows nothing about the database, sessions or permissions: the `instance` crate
//! decides what a visitor may see and do, fills a view model, and calls a page function.
//!
//! Where to start:
//! - [`view`]: the view models, starting with [`view::PageContext`] that every page takes.
//! - [`pages`]: one function per page (`pages::space(&ctx, &view)`), each returning a whole
//!   document as [`maud::Markup`] (which is an axum response with the `axum` feature).
//! - [`layout::page`]: the frame around them; [`components`]: the shared building blocks.
//! - [`routes`]: the URL of every page, so links here and routes in `instance` agree.
//! - [`assets`]: the stylesheet and favicon, with a content version for cache busting.
//! - [`sample`]: sample view models for every page. `cargo run -p convene-web --example gallery
//!   -- OUTDIR` writes them all as static HTML to look at; `--example render_bench` times the
//!   busiest pages.
//!
//! Invariants the pages keep:
//! - Every POST form carries the hidden `csrf` input with [`view::PageContext::csrf`].
//! - Every input has a `<label for>`; help and inline errors are tied to it with
//!   `aria-describedby`, and a field with an error is `aria-invalid`. Field names in
//!   [`view::FormErrors`] are the inputs' names (and ids).
//! - All text from people (names, topics, descriptions) goes through maud's escaping; nothing
//!   user-supplied is emitted with `PreEscaped`.
//! - Pages work without JavaScript. Only a Room page whose visitor may enter loads the video
//!   client (`/static/room.js`), which mounts on `#room-app`.
//! - No inline styles or scripts, so the instance can send a strict Content-Security-Policy.

pub mod assets;
pub mod components;
pub mod error;
pub mod governance_view;
pub mod layout;
pub mod network_view;
pub mod pages;
pub mod queue_view;
pub mod routes;
pub mod sample;
pub mod view;

pub use error::{Error, Result};
