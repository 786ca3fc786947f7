//! Writes every page of the web UI, rendered with sample data, as static HTML files.
//!
//! `cargo run -p convene-web --example gallery -- OUTDIR`, then open `OUTDIR/index.html`.
//! Asset URLs are made relative (`static/style.css`) so the files work from disk.

use std::path::PathBuf;
use std::{env, fs, process};

use convene_web::{assets, sample};

fn main() {
    let Some(out) = env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: gallery OUTDIR");
        process::exit(2);
    };
    if let Err(err) = write_gallery(&out) {
        eprintln!("gallery: could not write to {}: {err}", out.display());
        process::exit(1);
    }
}

fn write_gallery(out: &std::path::Path) -> std::io::Result<()> {
    fs::create_dir_all(out.join("static"))?;
    fs::write(out.join("static/style.css"), assets::STYLE_CSS)?;
    fs::write(out.join("static/favicon.svg"), assets::FAVICON_SVG)?;
    let mut index = String::from(
        "<!DOCTYPE html><html lang=\"en\"><meta charset=\"utf-8\"><title>Convene gallery</title>\
         <link rel=\"stylesheet\" href=\"static/style.css\"><main class=\"wrap\"><h1>Pages</h1><ul>",
    );
    let pages = sample::gallery();
    for (name, markup) in &pages {
        let html = markup.0.replace("\"/static/", "\"static/");
        fs::write(out.join(format!("{name}.html")), html)?;
        index.push_str(&format!("<li><a href=\"{name}.html\">{name}</a></li>"));
    }
    index.push_str("</ul></main></html>");
    fs::write(out.join("index.html"), index)?;
    println!("wrote {} pages to {}", pages.len(), out.display());
    Ok(())
}
