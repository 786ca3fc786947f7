//! Remote text for display: names, summaries and note contents arrive as HTML from servers we
//! do not trust. [`plain_text`] keeps only the words; the web crate's templates escape them
//! again on output, so nothing a peer writes becomes markup on our pages.

/// The longest text we keep from one remote field, in characters.
pub const MAX_TEXT_CHARS: usize = 5_000;

/// Strips tags (`<p>`, `<script>…</script>` and their contents, comments), decodes the common
/// entities, turns `<br>` and block ends into line breaks, collapses spaces, and cuts to
/// `max_chars`.
pub fn plain_text(html: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(html.len().min(max_chars * 4));
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let tag_and_after = &rest[start..];
        let lower: String = tag_and_after
            .chars()
            .take(10)
            .collect::<String>()
            .to_ascii_lowercase();
        // Drop whole elements whose content is not text.
        let skip_until = ["script", "style"].into_iter().find_map(|name| {
            lower
                .starts_with(&format!("<{name}"))
                .then(|| format!("</{name}"))
        });
        if let Some(close) = skip_until {
            rest = match tag_and_after.to_ascii_lowercase().find(&close) {
                Some(end) => {
                    let after_close = &tag_and_after[end..];
                    after_close
                        .find('>')
                        .map_or("", |gt| &after_close[gt + 1..])
                }
                None => "",
            };
            continue;
        }
        if tag_and_after.starts_with("<!--") {
            rest = tag_and_after
                .find("-->")
                .map_or("", |end| &tag_and_after[end + 3..]);
            continue;
        }
        let Some(end) = tag_and_after.find('>') else {
            rest = "";
            break;
        };
        let tag = tag_and_after[1..end]
            .trim_start_matches('/')
            .to_ascii_lowercase();
        let name = tag
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("");
        if matches!(
            name,
            "br" | "p" | "div" | "li" | "blockquote" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6"
        ) {
            out.push('\n');
        }
        rest = &tag_and_after[end + 1..];
    }
    out.push_str(rest);
    let decoded = decode_entities(&out);
    let mut text = String::new();
    for line in decoded.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&line);
    }
    text.chars().take(max_chars).collect()
}

fn decode_entities(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let entity_end = after
            .char_indices()
            .take(12)
            .find(|(_, c)| *c == ';')
            .map(|(i, _)| i);
        let decoded = entity_end.and_then(|end| {
            let name = &after[1..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32)
                    .filter(|c| !c.is_control() || *c == '\n'),
            }?;
            Some((c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_goes_and_words_stay() {
        assert_eq!(
            plain_text(
                "<p>Hello <b>there</b> &amp; welcome</p><p>Second&nbsp;line<br>third</p>",
                100
            ),
            "Hello there & welcome\nSecond line\nthird"
        );
        assert_eq!(
            plain_text("a<script>alert('x')</script>b<style>p{}</style>c", 100),
            "abc"
        );
        assert_eq!(plain_text("x<!-- hidden -->y", 100), "xy");
        assert_eq!(
            plain_text("&lt;script&gt; stays text", 100),
            "<script> stays text"
        );
        assert_eq!(plain_text("&#233;t&#xE9; &bogus; &", 100), "été &bogus; &");
        assert_eq!(plain_text("unclosed <a href=", 100), "unclosed");
        assert_eq!(plain_text(&"word ".repeat(100), 9), "word word");
        assert_eq!(
            plain_text("<SCRIPT>x</SCRIPT>ok<scRipt>never closed", 100),
            "ok"
        );
        assert_eq!(plain_text("é<é>é", 100), "éé");
    }
}
