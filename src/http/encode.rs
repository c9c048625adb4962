//! Response compression for `encode`: which coding a client gets, whether a response
//! qualifies, and the streaming encoders.
//!
//! The choice follows Caddy: the client's `Accept-Encoding` q-values first, the order the
//! Caddyfile lists the codings (`prefer`) among equal q-values; `q=0` refuses a coding; a
//! WebSocket handshake is never encoded. A response qualifies when it is not already encoded,
//! does not say `Cache-Control: no-transform`, has a status with a body, a `Content-Type` on
//! the match list, and is not known to be shorter than `minimum_length`.
//!
//! The encoders never hold bytes back: every [`StreamEncoder::encode`] ends with a sync flush,
//! so what the upstream sent is on its way to the client as soon as it was read. For a body
//! that arrives in one read that costs nothing; for a trickle (a progress stream, server-sent
//! events) it costs some ratio, and no latency.
//!
//! Owns: negotiation, qualification, what an encoding changes in a head ([`Reencoding`]) and in
//! a revalidation ([`unsuffixed_if_none_match`]), compression. Does not own: writing heads
//! (`rewrite`, `header_ops`, `files`, which apply a `Reencoding` as they write, so that an
//! encoded head is written once), framing the encoded body (the response path), or the config
//! (`config::Encode`).

use std::io::{self, Write};

use crate::config::{Coding, Encode};
use crate::http::request::Request;

/// The `If-None-Match` to pass on to the handler when `coding` was chosen for the response, if
/// it changes: a strong tag ending in this proxy's `-<coding>` suffix loses the suffix, so the
/// handler that made the tag (an upstream, `file_server`) recognises its own and can answer
/// `304`. As in Caddy, only the first field's value is read, and only its end.
pub fn unsuffixed_if_none_match(value: &[u8], coding: Coding) -> Option<Vec<u8>> {
    if value.starts_with(b"W/") {
        return None;
    }
    let stem = value.strip_suffix(b"\"")?.strip_suffix(coding.token().as_bytes())?;
    let mut unsuffixed = stem.strip_suffix(b"-")?.to_vec();
    unsuffixed.push(b'"');
    Some(unsuffixed)
}

/// The tag a revalidation of `request`'s response should be checked against, when it differs
/// from the one sent: `encode` chooses a coding for it and its first `If-None-Match` value
/// carries that coding's suffix ([`unsuffixed_if_none_match`]).
pub fn revalidated_tag(encode: &Encode, request: &Request) -> Option<String> {
    let coding = choose_for(encode, request)?;
    let given = request.values("if-none-match").next()?;
    String::from_utf8(unsuffixed_if_none_match(given, coding)?).ok()
}

/// The coding `encode` chooses for `request`'s response, if any (never for an upgrade).
pub fn choose_for(encode: &Encode, request: &Request) -> Option<Coding> {
    let websocket = request.values("sec-websocket-key").next().is_some();
    choose(request.values("accept-encoding"), websocket, encode)
}

/// The coding `request`'s `Accept-Encoding` values ask for among those `encode` offers, if
/// any. `websocket`: the request carries `Sec-WebSocket-Key`.
pub fn choose<'a>(
    accept_encoding: impl Iterator<Item = &'a [u8]>,
    websocket: bool,
    encode: &Encode,
) -> Option<Coding> {
    if websocket {
        return None;
    }
    let mut best: Option<(u32, usize, Coding)> = None;
    for value in accept_encoding {
        for item in value.split(|&b| b == b',') {
            let mut parts = item.split(|&b| b == b';');
            let name = parts.next().unwrap_or_default().trim_ascii();
            let Some(rank) =
                encode.prefer.iter().position(|c| c.token().as_bytes().eq_ignore_ascii_case(name))
            else {
                continue;
            };
            let q = parts.find_map(q_value).unwrap_or(1000);
            if q == 0 {
                continue;
            }
            // Higher q wins; among equal q-values the coding listed first.
            let better = match best {
                None => true,
                Some((best_q, best_rank, _)) => q > best_q || (q == best_q && rank < best_rank),
            };
            if better {
                best = Some((q, rank, encode.prefer[rank]));
            }
        }
    }
    best.map(|(_, _, coding)| coding)
}

/// `q=0.5` → 500 (thousandths, RFC 9110 §12.4.2); `None` for any other parameter. A malformed
/// q-value counts as 1, as in Caddy.
fn q_value(param: &[u8]) -> Option<u32> {
    let param = param.trim_ascii();
    let value = param.strip_prefix(b"q=").or_else(|| param.strip_prefix(b"Q="))?;
    let text = std::str::from_utf8(value).ok()?;
    match text.parse::<f64>() {
        Ok(q) if (0.0..=1.0).contains(&q) => Some((q * 1000.0).round() as u32),
        _ => Some(1000),
    }
}

/// What the response path knows about a response when it decides whether to encode it.
pub struct ResponseFacts<'a> {
    pub status: u16,
    pub content_type: Option<&'a [u8]>,
    /// Any `Content-Encoding` is present.
    pub already_encoded: bool,
    /// `Cache-Control` says `no-transform`.
    pub no_transform: bool,
    /// The body's length when the response says it.
    pub content_length: Option<u64>,
}

/// Whether `encode` applies to this response.
pub fn qualifies(encode: &Encode, facts: &ResponseFacts<'_>) -> bool {
    let has_body = !(facts.status < 200 || facts.status == 204 || facts.status == 304);
    has_body
        && !facts.already_encoded
        && !facts.no_transform
        && facts.content_length.is_none_or(|len| len >= encode.minimum_length)
        && facts.content_type.is_some_and(|t| type_matches(encode, t))
}

/// `Content-Type` against the match list: `text/*` matches any `text/` type, `application/json*`
/// any value starting so (parameters included), case-insensitively.
fn type_matches(encode: &Encode, content_type: &[u8]) -> bool {
    let value = content_type.trim_ascii();
    encode.content_types.iter().any(|pattern| {
        let pattern = pattern.as_bytes();
        match pattern.strip_suffix(b"*") {
            Some(prefix) => {
                value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix)
            }
            None => value.eq_ignore_ascii_case(pattern),
        }
    })
}

/// What compressing a response does to its head, for the writers of heads to apply as they
/// write (`rewrite` and `header_ops` for proxied responses, `files` for whole files), so that
/// an encoded head is written once: the length and the upstream's framing go (the encoded
/// body is chunked, or close-delimited for an HTTP/1.0 client: `chunked` false), so does
/// `Accept-Ranges` (ranges of the encoded bytes are unknown); a strong `ETag` gets `-<coding>`
/// inside its quotes (RFC 9110 §8.8.3.3: another representation needs another tag);
/// `Content-Encoding` is added, and `Vary: Accept-Encoding` unless a `Vary` lists it already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reencoding {
    pub coding: Coding,
    pub chunked: bool,
}

impl Reencoding {
    /// Whether a field of this name stays in the encoded head.
    pub fn keeps(name: &[u8]) -> bool {
        !["content-length", "transfer-encoding", "accept-ranges"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
    }

    /// Settles the value of a field just written as `out[value_start..]` (its line end not
    /// yet): a strong ETag gets the coding's suffix (and loses the blanks around it). Returns
    /// whether the field is a `Vary` that already covers `Accept-Encoding`.
    pub fn settle(&self, name: &[u8], out: &mut Vec<u8>, value_start: usize) -> bool {
        let value = &out[value_start..];
        if name.eq_ignore_ascii_case(b"vary") {
            return value.split(|&b| b == b',').any(|v| {
                v.trim_ascii().eq_ignore_ascii_case(b"accept-encoding") || v.trim_ascii() == b"*"
            });
        }
        let tag = value.trim_ascii();
        let strong = tag.len() >= 2 && tag.starts_with(b"\"") && tag.ends_with(b"\"");
        if name.eq_ignore_ascii_case(b"etag") && strong {
            let leading = value.len() - value.trim_ascii_start().len();
            let closing_quote = value_start + leading + tag.len() - 1;
            out.truncate(closing_quote);
            out.drain(value_start..value_start + leading);
            out.push(b'-');
            out.extend_from_slice(self.coding.token().as_bytes());
            out.push(b'"');
        }
        false
    }

    /// The fields the coding adds, in order: `Content-Encoding`, then `Vary: Accept-Encoding`
    /// unless the head's own `Vary` covers it (`varies`, from [`Reencoding::settle`]).
    pub fn added_fields(
        &self,
        varies: bool,
    ) -> impl Iterator<Item = (&'static [u8], &'static [u8])> {
        let vary = (!varies).then_some((b"Vary".as_slice(), b"Accept-Encoding".as_slice()));
        std::iter::once((b"Content-Encoding".as_slice(), self.coding.token().as_bytes()))
            .chain(vary)
    }

    /// Whether the coding adds a field of this name (see [`Reencoding::added_fields`]).
    pub fn adds(&self, name: &[u8]) -> bool {
        name.eq_ignore_ascii_case(b"content-encoding") || name.eq_ignore_ascii_case(b"vary")
    }

    /// The encoded body's framing field, the head's last (none for a close-delimited body).
    pub fn write_framing(&self, out: &mut Vec<u8>) {
        if self.chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
    }
}

/// A streaming compressor: input in, encoded bytes appended to `out`.
pub enum StreamEncoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl StreamEncoder {
    pub fn new(coding: Coding, encode: &Encode) -> io::Result<StreamEncoder> {
        Ok(match coding {
            Coding::Gzip => {
                let level = flate2::Compression::new(encode.gzip_level);
                StreamEncoder::Gzip(flate2::write::GzEncoder::new(Vec::new(), level))
            }
            Coding::Zstd => StreamEncoder::Zstd(zstd::stream::write::Encoder::new(
                Vec::new(),
                encode.zstd_level,
            )?),
        })
    }

    /// Compress `input` and flush, appending everything the encoder has so far to `out`.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        match self {
            StreamEncoder::Gzip(gz) => {
                gz.write_all(input)?;
                gz.flush()?;
                out.append(gz.get_mut());
            }
            StreamEncoder::Zstd(z) => {
                z.write_all(input)?;
                z.flush()?;
                out.append(z.get_mut());
            }
        }
        Ok(())
    }

    /// End the stream: the encoder's trailer (gzip's CRC and length, zstd's last block).
    pub fn finish(self, out: &mut Vec<u8>) -> io::Result<()> {
        let mut rest = match self {
            StreamEncoder::Gzip(gz) => gz.finish()?,
            StreamEncoder::Zstd(z) => z.finish()?,
        };
        out.append(&mut rest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn encode_config(prefer: &[Coding]) -> Encode {
        Encode { prefer: prefer.to_vec(), ..Encode::default() }
    }

    fn pick(header: &str, prefer: &[Coding]) -> Option<Coding> {
        choose([header.as_bytes()].into_iter(), false, &encode_config(prefer))
    }

    #[test]
    fn the_clients_q_values_come_first_then_the_configured_order() {
        use Coding::{Gzip, Zstd};
        assert_eq!(pick("gzip, zstd", &[Zstd, Gzip]), Some(Zstd));
        assert_eq!(pick("gzip, zstd", &[Gzip, Zstd]), Some(Gzip));
        assert_eq!(pick("gzip;q=1, zstd;q=0.5", &[Zstd, Gzip]), Some(Gzip));
        assert_eq!(pick("gzip;q=0, zstd;q=0.1", &[Gzip, Zstd]), Some(Zstd));
        assert_eq!(pick("GZIP ; q=0.8", &[Zstd, Gzip]), Some(Gzip));
        assert_eq!(pick("br, deflate", &[Zstd, Gzip]), None);
        assert_eq!(pick("gzip;q=0", &[Gzip]), None);
        assert_eq!(pick("", &[Gzip]), None);
        assert_eq!(pick("zstd", &[Gzip]), None, "only what encode offers");
        let ws = choose([b"gzip".as_slice()].into_iter(), true, &encode_config(&[Gzip]));
        assert_eq!(ws, None, "a WebSocket handshake is never encoded");
    }

    #[test]
    fn only_text_like_unencoded_responses_with_a_body_qualify() {
        let encode = Encode::default();
        let facts = |status, content_type: Option<&'static str>, len| ResponseFacts {
            status,
            content_type: content_type.map(str::as_bytes),
            already_encoded: false,
            no_transform: false,
            content_length: len,
        };
        assert!(qualifies(&encode, &facts(200, Some("text/html; charset=utf-8"), None)));
        assert!(qualifies(&encode, &facts(404, Some("application/json"), Some(600))));
        assert!(qualifies(&encode, &facts(200, Some("Application/JavaScript"), Some(512))));
        assert!(!qualifies(&encode, &facts(200, Some("text/plain"), Some(511))), "short");
        assert!(!qualifies(&encode, &facts(200, Some("audio/wav"), None)), "audio");
        assert!(!qualifies(&encode, &facts(200, Some("image/png"), None)));
        assert!(!qualifies(&encode, &facts(200, None, None)), "no type");
        assert!(!qualifies(&encode, &facts(204, Some("text/plain"), None)));
        assert!(!qualifies(&encode, &facts(304, Some("text/plain"), None)));
        assert!(!qualifies(&encode, &facts(101, Some("text/plain"), None)));
        let encoded = ResponseFacts { already_encoded: true, ..facts(200, Some("text/css"), None) };
        assert!(!qualifies(&encode, &encoded));
        let no_transform =
            ResponseFacts { no_transform: true, ..facts(200, Some("text/css"), None) };
        assert!(!qualifies(&encode, &no_transform));
    }

    #[test]
    fn a_strong_etag_gets_the_codings_suffix_and_a_weak_one_stays() {
        let gzip = Reencoding { coding: Coding::Gzip, chunked: true };
        let settled = |name: &[u8], value: &[u8]| {
            let mut out = b"X: ".to_vec();
            out.extend_from_slice(value);
            let varies = gzip.settle(name, &mut out, 3);
            (String::from_utf8(out).unwrap(), varies)
        };
        assert_eq!(settled(b"ETag", b"\"abc\""), ("X: \"abc-gzip\"".into(), false));
        assert_eq!(settled(b"etag", b" \"abc\" "), ("X: \"abc-gzip\"".into(), false));
        assert_eq!(settled(b"ETag", b"W/\"abc\""), ("X: W/\"abc\"".into(), false));
        assert_eq!(settled(b"ETag", b"\""), ("X: \"".into(), false), "one quote is no tag");
        assert_eq!(settled(b"X-Tag", b"\"abc\""), ("X: \"abc\"".into(), false));
        assert_eq!(
            settled(b"Vary", b"Origin, accept-encoding"),
            ("X: Origin, accept-encoding".into(), true)
        );
        assert_eq!(settled(b"vary", b"*"), ("X: *".into(), true));
        assert_eq!(settled(b"Vary", b"Origin"), ("X: Origin".into(), false));
        assert!(!Reencoding::keeps(b"Accept-Ranges") && !Reencoding::keeps(b"content-length"));
        assert!(!Reencoding::keeps(b"Transfer-Encoding") && Reencoding::keeps(b"ETag"));
    }

    #[test]
    fn every_encoded_piece_is_decodable_as_soon_as_it_is_out_and_the_whole_is_exact() {
        let text: Vec<u8> =
            (0..20_000).flat_map(|i| format!("line {i} of a transcript\n").into_bytes()).collect();
        for coding in [Coding::Gzip, Coding::Zstd] {
            let mut encoder = StreamEncoder::new(coding, &Encode::default()).unwrap();
            let mut out = Vec::new();
            for piece in text.chunks(7_000) {
                let before = out.len();
                encoder.encode(piece, &mut out).unwrap();
                assert!(out.len() > before, "{coding:?}: a flushed piece is out at once");
            }
            encoder.finish(&mut out).unwrap();
            assert!(out.len() < text.len() / 5, "{coding:?}: {} bytes", out.len());
            let mut decoded = Vec::new();
            match coding {
                Coding::Gzip => {
                    flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut decoded).unwrap();
                }
                Coding::Zstd => decoded = zstd::stream::decode_all(&out[..]).unwrap(),
            }
            assert_eq!(decoded, text, "{coding:?}");
        }
    }

    #[test]
    fn a_revalidation_loses_only_the_suffix_of_the_chosen_coding_on_a_strong_tag() {
        let strip = |v: &str, c| unsuffixed_if_none_match(v.as_bytes(), c).map(String::from_utf8);
        assert_eq!(strip("\"v1-gzip\"", Coding::Gzip), Some(Ok("\"v1\"".to_string())));
        assert_eq!(strip("\"a\", \"v1-zstd\"", Coding::Zstd), Some(Ok("\"a\", \"v1\"".into())));
        assert_eq!(strip("\"v1-gzip\"", Coding::Zstd), None, "another coding's tag");
        assert_eq!(strip("W/\"v1-gzip\"", Coding::Gzip), None, "weak tags are never suffixed");
        assert_eq!(strip("\"v1gzip\"", Coding::Gzip), None);
        assert_eq!(strip("\"v1\"", Coding::Gzip), None);
        assert_eq!(strip("*", Coding::Gzip), None);
    }
}
