//! One request's middleware, sorted once by what applies it: routing returns every matching
//! non-terminal handler in route order (`config::route::resolve`); the connection driver reads
//! this summary instead of scanning that list again for each directive.
//!
//! Owns how several of one directive combine (the smallest body limit, the last `root`, every
//! `try_files` in order, the first `encode`). Does not own what any of them does.

use crate::config::{BasicAuth, Encode, ForwardAuth, Handler, HeaderOp, Template, TemplatePart};
use crate::files::FileMiddleware;
use crate::http::encode;
use crate::http::header_ops::HeaderMiddleware;
use crate::http::request::Request;

/// The middleware that applies to one request.
#[derive(Default)]
pub struct Middleware<'c> {
    /// The smallest `request_body max_size`: every limit on the way must hold, as Caddy's
    /// nested body limits do.
    pub max_body: Option<u64>,
    /// `header` ops, as they shape every answer.
    pub headers: HeaderMiddleware<'c>,
    /// `basic_auth`s, in route order: each must admit the request.
    pub basic_auths: Vec<&'c BasicAuth>,
    /// `forward_auth`s, in route order, asked after every `basic_auth` admitted the request.
    pub forward_auths: Vec<&'c ForwardAuth>,
    /// The outermost `encode`: the first to see the response.
    pub encode: Option<&'c Encode>,
    /// `root`, `try_files` and `encode`, for `file_server`.
    pub files: FileMiddleware<'c>,
}

impl<'c> Middleware<'c> {
    /// Sorts `middleware` (in route order, as routing found it). Allocates nothing for a
    /// request without middleware.
    pub fn of(middleware: &[&'c Handler]) -> Middleware<'c> {
        let mut sorted = Middleware::default();
        let mut headers = Vec::new();
        for m in middleware {
            match m {
                Handler::RequestBody { max_size: Some(max) } => {
                    sorted.max_body = Some(sorted.max_body.map_or(*max, |m| m.min(*max)));
                }
                Handler::Header(h) => headers.push(h),
                Handler::BasicAuth(auth) => sorted.basic_auths.push(auth),
                Handler::ForwardAuth(auth) => sorted.forward_auths.push(auth),
                Handler::Encode(encode) => {
                    sorted.encode.get_or_insert(encode);
                }
                // The last one that matched wins: an inner `root` overrides an outer one.
                Handler::Root(root) => sorted.files.root = Some(root),
                Handler::TryFiles(t) => sorted.files.try_files.push(t),
                _ => {}
            }
        }
        sorted.headers = HeaderMiddleware::gather(headers.into_iter());
        sorted.files.encode = sorted.encode;
        sorted
    }

    /// The op `encode` adds to a proxied request's head: a client revalidating a response this
    /// proxy encoded sends back the encoded tag (`"v1-gzip"`); the upstream made `"v1"`, so it
    /// gets that, as Caddy's `encode` passes it on.
    pub fn revalidation_op(&self, request: &Request) -> Option<HeaderOp> {
        let value = encode::revalidated_tag(self.encode?, request)?;
        let value = Template { parts: vec![TemplatePart::Literal(value)] };
        Some(HeaderOp::Set { name: "If-None-Match".to_string(), value })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::ResponseHeaders;

    #[test]
    fn the_tightest_body_limit_and_the_innermost_root_win() {
        let handlers = [
            Handler::RequestBody { max_size: Some(10) },
            Handler::Root(PathBuf::from("/outer")),
            Handler::RequestBody { max_size: None },
            Handler::RequestBody { max_size: Some(4) },
            Handler::Root(PathBuf::from("/inner")),
            Handler::RequestBody { max_size: Some(7) },
        ];
        let refs: Vec<&Handler> = handlers.iter().collect();
        let sorted = Middleware::of(&refs);
        assert_eq!(sorted.max_body, Some(4));
        assert_eq!(sorted.files.root, Some(std::path::Path::new("/inner")));
    }

    #[test]
    fn the_outermost_encode_applies_to_proxied_responses_and_files_alike() {
        let encode = |minimum_length| Encode {
            prefer: Vec::new(),
            minimum_length,
            gzip_level: 5,
            zstd_level: 3,
            content_types: Vec::new(),
        };
        let outer = encode(1);
        let handlers = [Handler::Encode(outer.clone()), Handler::Encode(encode(512))];
        let refs: Vec<&Handler> = handlers.iter().collect();
        let sorted = Middleware::of(&refs);
        assert_eq!(sorted.encode, Some(&outer));
        assert_eq!(sorted.files.encode, Some(&outer));
    }

    #[test]
    fn a_request_without_middleware_has_none() {
        let sorted = Middleware::of(&[]);
        assert_eq!(sorted.max_body, None);
        assert!(sorted.headers.is_empty());
        assert!(sorted.basic_auths.is_empty() && sorted.forward_auths.is_empty());
        assert!(sorted.encode.is_none() && sorted.files.root.is_none());
        assert!(sorted.files.try_files.is_empty());
    }

    #[test]
    fn header_blocks_are_gathered_in_route_order() {
        let handlers = [
            Handler::Header(ResponseHeaders::default()),
            Handler::RequestBody { max_size: None },
            Handler::Header(ResponseHeaders::default()),
        ];
        let refs: Vec<&Handler> = handlers.iter().collect();
        let sorted = Middleware::of(&refs);
        let expected = HeaderMiddleware::gather(handlers.iter().filter_map(|h| match h {
            Handler::Header(h) => Some(h),
            _ => None,
        }));
        assert_eq!(format!("{:?}", sorted.headers), format!("{expected:?}"));
    }
}
