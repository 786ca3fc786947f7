//! How long the pages take to render, so page rendering can be ruled in or out when the
//! instance's Space and Room page benchmarks move.
//!
//! `cargo run --release -p convene-web --example render_bench [ITERATIONS]`

use std::hint::black_box;
use std::time::Instant;

use convene_web::view::Stage;
use convene_web::{pages, sample};

/// A named page render returning the document's length.
type Case<'a> = (&'static str, Box<dyn Fn() -> usize + 'a>);

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let ctx = sample::member_context();

    // A busy Space: 40 doors.
    let mut busy = sample::space();
    let template = busy.rooms[0].clone();
    busy.rooms = (0..40)
        .map(|i| {
            let mut door = template.clone();
            door.name = format!("Room {i}");
            door.slug = format!("room-{i}");
            door.is_entrance = i == 0;
            door
        })
        .collect();
    let mut room = sample::room_view(Stage::Join(sample::join_panel()));
    room.inside = (0..12).map(|i| format!("Participant {i}")).collect();

    let cases: [Case<'_>; 4] = [
        (
            "space page (4 rooms)",
            Box::new(|| pages::space(&ctx, &sample::space()).0.len()),
        ),
        (
            "space page (40 rooms)",
            Box::new(|| pages::space(&ctx, &busy).0.len()),
        ),
        (
            "room page (12 inside)",
            Box::new(|| pages::room(&ctx, &room).0.len()),
        ),
        (
            "landing page (4 spaces)",
            Box::new(|| pages::landing(&ctx, &sample::landing()).0.len()),
        ),
    ];
    println!("{iterations} renders each, release build recommended");
    for (name, render) in &cases {
        let bytes = render();
        let start = Instant::now();
        for _ in 0..iterations {
            black_box(render());
        }
        let per = start.elapsed() / iterations;
        println!(
            "{name:<26} {:>8.1} µs/render  {bytes:>6} bytes",
            per.as_secs_f64() * 1e6
        );
    }
}
