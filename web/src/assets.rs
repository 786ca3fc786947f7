//! The static files the instance serves beside the pages: the stylesheet, the favicon and the
//! Room page's browser client (its script and stylesheet).
//!
//! All are compiled into the binary so an instance is one file to deploy. Pages link the
//! stylesheets as `/static/style.css?v={STYLE_CSS_VERSION}` (and `room.css` likewise); the
//! version is a hash of the file's bytes computed at compile time, so the instance can serve it
//! with a long cache lifetime and a new release still reaches every browser at once. The room
//! script keeps its plain URL (it is an ES module other modules could import by that name) and
//! is served for revalidation instead.

/// The one stylesheet of the web UI, served at [`STYLE_CSS_PATH`] as `text/css; charset=utf-8`.
pub const STYLE_CSS: &str = include_str!("../static/style.css");

/// Where the instance serves [`STYLE_CSS`].
pub const STYLE_CSS_PATH: &str = "/static/style.css";

/// A hash of [`STYLE_CSS`] (16 hex digits) that changes whenever the stylesheet does.
pub const STYLE_CSS_VERSION: &str = match std::str::from_utf8(&STYLE_CSS_VERSION_DIGITS) {
    Ok(s) => s,
    // Evaluated at compile time, and hex digits are ASCII: this arm cannot be reached.
    Err(_) => panic!("hex digits are ASCII"),
};

/// The favicon, served at [`FAVICON_SVG_PATH`] as `image/svg+xml`.
pub const FAVICON_SVG: &str = include_str!("../static/favicon.svg");

/// Where the instance serves [`FAVICON_SVG`].
pub const FAVICON_SVG_PATH: &str = "/static/favicon.svg";

/// The Room page's browser client (plain ES module, no build step), served at [`ROOM_JS_PATH`]
/// as `text/javascript; charset=utf-8`.
pub const ROOM_JS: &str = include_str!("../static/room.js");

/// Where the instance serves [`ROOM_JS`].
pub const ROOM_JS_PATH: &str = "/static/room.js";

/// The in-room stylesheet (grid, tiles, controls, chat), served at [`ROOM_CSS_PATH`]. It builds
/// on the tokens of [`STYLE_CSS`] and is linked only where the room client runs.
pub const ROOM_CSS: &str = include_str!("../static/room.css");

/// Where the instance serves [`ROOM_CSS`].
pub const ROOM_CSS_PATH: &str = "/static/room.css";

/// A hash of [`ROOM_CSS`] (16 hex digits), like [`STYLE_CSS_VERSION`].
pub const ROOM_CSS_VERSION: &str = match std::str::from_utf8(&ROOM_CSS_VERSION_DIGITS) {
    Ok(s) => s,
    // Evaluated at compile time, and hex digits are ASCII: this arm cannot be reached.
    Err(_) => panic!("hex digits are ASCII"),
};

/// The sprite sheet of the UI's line icons (one `<symbol>` per [`crate::components::Icon`]),
/// served at [`ICONS_SVG_PATH`] as `image/svg+xml`.
pub const ICONS_SVG: &str = include_str!("../static/icons.svg");

/// Where the instance serves [`ICONS_SVG`].
pub const ICONS_SVG_PATH: &str = "/static/icons.svg";

/// A hash of [`ICONS_SVG`] (16 hex digits), like [`STYLE_CSS_VERSION`].
pub const ICONS_SVG_VERSION: &str = match std::str::from_utf8(&ICONS_SVG_VERSION_DIGITS) {
    Ok(s) => s,
    // Evaluated at compile time, and hex digits are ASCII: this arm cannot be reached.
    Err(_) => panic!("hex digits are ASCII"),
};

/// `Cache-Control` for a versioned asset URL: the content behind it never changes.
pub const IMMUTABLE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// FNV-1a (64-bit): not for security, only to notice that the bytes changed.
const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

const fn hex_digits(hash: u64) -> [u8; 16] {
    let digits = b"0123456789abcdef";
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = digits[((hash >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

const STYLE_CSS_VERSION_DIGITS: [u8; 16] = hex_digits(fnv1a64(STYLE_CSS.as_bytes()));
const ROOM_CSS_VERSION_DIGITS: [u8; 16] = hex_digits(fnv1a64(ROOM_CSS.as_bytes()));
const ICONS_SVG_VERSION_DIGITS: [u8; 16] = hex_digits(fnv1a64(ICONS_SVG.as_bytes()));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_the_hash_of_the_stylesheet() {
        assert_eq!(STYLE_CSS_VERSION.len(), 16);
        assert!(STYLE_CSS_VERSION.bytes().all(|b| b.is_ascii_hexdigit()));
        let expected = format!("{:016x}", fnv1a64(STYLE_CSS.as_bytes()));
        assert_eq!(STYLE_CSS_VERSION, expected);
    }

    #[test]
    fn hash_changes_with_the_content() {
        assert_ne!(fnv1a64(b"body{}"), fnv1a64(b"body{ }"));
        // Published FNV-1a test vector.
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn room_client_is_a_module_with_its_own_versioned_stylesheet() {
        let expected = format!("{:016x}", fnv1a64(ROOM_CSS.as_bytes()));
        assert_eq!(ROOM_CSS_VERSION, expected);
        assert_ne!(ROOM_CSS_VERSION, STYLE_CSS_VERSION);
        // It mounts on the element the Room page renders, and loads nothing from elsewhere.
        assert!(ROOM_JS.contains("getElementById('room-app')"));
        assert!(!ROOM_JS.contains("http://") && !ROOM_JS.contains("https://"));
        assert!(!ROOM_JS.contains("import "), "one self-contained module");
    }

    #[test]
    fn favicon_is_an_svg() {
        assert!(FAVICON_SVG.trim_start().starts_with("<svg"));
        assert!(FAVICON_SVG.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    }
}
