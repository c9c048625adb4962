//! `Content-Type` from a file name's extension: the common web types, with `; charset=utf-8`
//! on the textual ones as Go's `mime` package gives them (and so Caddy). An extension not in
//! the table gets no `Content-Type`, as in Caddy, which never sniffs a file's content.

/// Extension (lower case, without the dot) → media type; sorted for the binary search.
const TYPES: &[(&str, &str)] = &[
    ("avif", "image/avif"),
    ("bin", "application/octet-stream"),
    ("css", "text/css; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("gif", "image/gif"),
    ("htm", "text/html; charset=utf-8"),
    ("html", "text/html; charset=utf-8"),
    ("ico", "image/vnd.microsoft.icon"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("js", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("md", "text/markdown; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("mp3", "audio/mpeg"),
    ("mp4", "video/mp4"),
    ("oga", "audio/ogg"),
    ("ogg", "audio/ogg"),
    ("opus", "audio/ogg"),
    ("otf", "font/otf"),
    ("pdf", "application/pdf"),
    ("png", "image/png"),
    ("svg", "image/svg+xml"),
    ("ttf", "font/ttf"),
    ("txt", "text/plain; charset=utf-8"),
    ("wasm", "application/wasm"),
    ("wav", "audio/wav"),
    ("webm", "video/webm"),
    ("webmanifest", "application/manifest+json"),
    ("webp", "image/webp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("xml", "text/xml; charset=utf-8"),
    ("zip", "application/zip"),
];

/// The media type of a file called `name` (its last path segment), if its extension is known.
pub fn content_type(name: &[u8]) -> Option<&'static str> {
    let dot = name.iter().rposition(|&b| b == b'.')?;
    let ext = std::str::from_utf8(&name[dot + 1..]).ok()?.to_ascii_lowercase();
    TYPES.binary_search_by(|(known, _)| known.cmp(&ext.as_str())).ok().map(|i| TYPES[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_for_the_binary_search() {
        assert!(TYPES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn text_types_carry_utf8_and_case_does_not_matter() {
        assert_eq!(content_type(b"index.html"), Some("text/html; charset=utf-8"));
        assert_eq!(content_type(b"APP.JS"), Some("text/javascript; charset=utf-8"));
        assert_eq!(content_type(b"logo.svg"), Some("image/svg+xml"));
        assert_eq!(content_type(b"a.b.wasm"), Some("application/wasm"));
    }

    #[test]
    fn unknown_or_missing_extensions_have_no_type() {
        assert_eq!(content_type(b"README"), None);
        assert_eq!(content_type(b"data.unknownext"), None);
        assert_eq!(content_type(b"trailing."), None);
    }
}
