//! `root`, `try_files` and `file_server`: the single-page client app beside the speech routes
//! (a deep link falls back to `/index.html`, assets keep their types), validators and `304`,
//! one `Range` (`206`, `416`), `HEAD`, precompressed sidecars chosen by `Accept-Encoding`,
//! index files and Caddy's canonical redirects, and what is never served: paths climbing out
//! of the root, symlinks leading out of it, hidden files. Files live in the test's own
//! directory; every test runs on both drivers and both client legs.

use std::fs;
use std::path::Path;

use crate::support::payload::{pattern, sha256_hex};
use crate::support::per_driver;
use crate::support::temp::{temp_dir, TempDir};
use crate::support::Proxy;

const INDEX: &str = "<!doctype html><title>client</title>\n";
const APP_JS: &str = "console.log('client');\n";

/// A client app under `<dir>/site`, with `outside.txt` beside it (not under the root).
fn client_app() -> TempDir {
    let dir = temp_dir("files");
    let site = dir.path().join("site");
    fs::create_dir_all(site.join("assets")).unwrap();
    fs::create_dir_all(site.join("docs")).unwrap();
    fs::create_dir_all(site.join("empty")).unwrap();
    fs::create_dir_all(site.join(".git")).unwrap();
    fs::write(site.join("index.html"), INDEX).unwrap();
    fs::write(site.join("docs/index.html"), "docs\n").unwrap();
    fs::write(site.join("assets/app.js"), APP_JS).unwrap();
    fs::write(site.join("assets/app.js.br"), b"brotli bytes").unwrap();
    fs::write(site.join("assets/app.js.gz"), b"gzip bytes!").unwrap();
    fs::write(site.join("assets/logo.svg"), "<svg/>").unwrap();
    fs::write(site.join("ten.txt"), "0123456789").unwrap();
    fs::write(site.join(".env"), "SECRET=1\n").unwrap();
    fs::write(site.join(".git/config"), "[core]\n").unwrap();
    fs::write(dir.path().join("outside.txt"), "outside\n").unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside.txt"), site.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(site.join("ten.txt"), site.join("inside.txt")).unwrap();
    dir
}

fn site_dir(dir: &TempDir) -> String {
    dir.path().join("site").display().to_string()
}

/// The user's case: the app served with a fallback to `/index.html`.
fn spa(dir: &TempDir) -> String {
    format!(
        "$SITE {{\n\thandle {{\n\t\troot * {}\n\t\ttry_files {{path}} /index.html\n\t\t\
         file_server {{\n\t\t\tprecompressed br gzip\n\t\t}}\n\t}}\n}}\n",
        site_dir(dir)
    )
}

/// A plain file server, without a fallback.
fn plain(dir: &TempDir) -> String {
    format!("$SITE {{\n\troot * {}\n\tfile_server\n}}\n", site_dir(dir))
}

fn request(
    proxy: &Proxy,
    conn: &mut crate::support::client::HttpConn,
    head: &str,
) -> crate::support::client::Response {
    let method = head.split(' ').next().unwrap_or("GET").to_string();
    let head = head.replace("HOST", &proxy.host());
    conn.send(format!("{head}\r\n\r\n").as_bytes());
    conn.response(&method)
}

per_driver! {
    fn a_deep_link_falls_back_to_the_index_and_assets_keep_their_types(setup) {
        let dir = client_app();
        let proxy = Proxy::start(&spa(&dir), setup);
        let mut conn = proxy.connect();
        let host = proxy.host();
        for path in ["/", "/session/42/transcript", "/index.html"] {
            let resp = conn.get(&host, path);
            assert_eq!(resp.status, 200, "{path}");
            assert_eq!(resp.text(), INDEX, "{path}");
            assert_eq!(resp.header("content-type"), Some("text/html; charset=utf-8"));
        }
        let js = conn.get(&host, "/assets/app.js");
        assert_eq!(js.text(), APP_JS);
        assert_eq!(js.header("content-type"), Some("text/javascript; charset=utf-8"));
        assert_eq!(js.header("accept-ranges"), Some("bytes"));
        assert_eq!(js.header("vary"), Some("Accept-Encoding"));
        assert_eq!(js.header("content-length"), Some(APP_JS.len().to_string().as_str()));
        let svg = conn.get(&host, "/assets/logo.svg");
        assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    }
}

per_driver! {
    fn etags_and_dates_turn_into_304s(setup) {
        let dir = client_app();
        let proxy = Proxy::start(&plain(&dir), setup);
        let mut conn = proxy.connect();
        let first = conn.get(&proxy.host(), "/ten.txt");
        let etag = first.header("etag").unwrap().to_string();
        let modified = first.header("last-modified").unwrap().to_string();
        assert!(etag.starts_with('"') && etag.ends_with("-a\""), "Caddy's form: {etag}");
        let resp = request(&proxy, &mut conn, &format!("GET /ten.txt HTTP/1.1\r\nHost: HOST\r\nIf-None-Match: {etag}"));
        assert_eq!(resp.status, 304);
        assert_eq!(resp.header("etag"), Some(etag.as_str()));
        assert!(resp.body.is_empty());
        let resp = request(&proxy, &mut conn, &format!("GET /ten.txt HTTP/1.1\r\nHost: HOST\r\nIf-Modified-Since: {modified}"));
        assert_eq!(resp.status, 304);
        let resp = request(&proxy, &mut conn, "GET /ten.txt HTTP/1.1\r\nHost: HOST\r\nIf-None-Match: \"other\"");
        assert_eq!((resp.status, resp.text().as_str()), (200, "0123456789"));
        let resp = request(&proxy, &mut conn, "GET /ten.txt HTTP/1.1\r\nHost: HOST\r\nIf-Match: \"other\"");
        assert_eq!(resp.status, 412);
    }
}

per_driver! {
    fn one_range_is_206_and_one_outside_the_file_is_416(setup) {
        let dir = client_app();
        let proxy = Proxy::start(&plain(&dir), setup);
        let mut conn = proxy.connect();
        let resp = request(&proxy, &mut conn, "GET /ten.txt HTTP/1.1\r\nHost: HOST\r\nRange: bytes=2-4");
        assert_eq!((resp.status, resp.text().as_str()), (206, "234"));
        assert_eq!(resp.header("content-range"), Some("bytes 2-4/10"));
        let resp = request(&proxy, &mut conn, "GET /ten.txt HTTP/1.1\r\nHost: HOST\r\nRange: bytes=-3");
        assert_eq!((resp.status, resp.text().as_str()), (206, "789"));
        assert_eq!(resp.header("content-range"), Some("bytes 7-9/10"));
        let resp = request(&proxy, &mut conn, "GET /ten.txt HTTP/1.1\r\nHost: HOST\r\nRange: bytes=6-");
        assert_eq!((resp.status, resp.text().as_str()), (206, "6789"));
        let resp = request(&proxy, &mut conn, "GET /ten.txt HTTP/1.1\r\nHost: HOST\r\nRange: bytes=10-");
        assert_eq!(resp.status, 416);
        assert_eq!(resp.header("content-range"), Some("bytes */10"));
        let resp = request(&proxy, &mut conn, "HEAD /ten.txt HTTP/1.1\r\nHost: HOST");
        assert_eq!((resp.status, resp.header("content-length")), (200, Some("10")));
        assert!(resp.body.is_empty());
        // The connection is still in step after every answer.
        assert_eq!(conn.get(&proxy.host(), "/ten.txt").text(), "0123456789");
    }
}

per_driver! {
    fn precompressed_sidecars_follow_accept_encoding_in_the_configured_order(setup) {
        let dir = client_app();
        let proxy = Proxy::start(&spa(&dir), setup);
        let mut conn = proxy.connect();
        let get = |conn: &mut _, accept: &str| {
            let accept = match accept { "" => String::new(), a => format!("\r\nAccept-Encoding: {a}") };
            request(&proxy, conn, &format!("GET /assets/app.js HTTP/1.1\r\nHost: HOST{accept}"))
        };
        let br = get(&mut conn, "gzip, deflate, br");
        assert_eq!((br.text().as_str(), br.header("content-encoding")), ("brotli bytes", Some("br")));
        assert_eq!(br.header("content-type"), Some("text/javascript; charset=utf-8"));
        assert_eq!(br.header("vary"), Some("Accept-Encoding"));
        let gz = get(&mut conn, "gzip");
        assert_eq!((gz.text().as_str(), gz.header("content-encoding")), ("gzip bytes!", Some("gzip")));
        assert_ne!(gz.header("etag"), br.header("etag"), "each sidecar has its own tag");
        let plain = get(&mut conn, "");
        assert_eq!((plain.text().as_str(), plain.header("content-encoding")), (APP_JS, None));
        let refused = get(&mut conn, "br;q=0, gzip;q=0");
        assert_eq!(refused.text(), APP_JS);
    }
}

per_driver! {
    fn directories_are_served_by_their_index_behind_canonical_redirects(setup) {
        let dir = client_app();
        let proxy = Proxy::start(&plain(&dir), setup);
        let mut conn = proxy.connect();
        let host = proxy.host();
        let resp = conn.get(&host, "/docs?lang=en");
        assert_eq!(resp.status, 308);
        assert_eq!(resp.header("location"), Some("/docs/?lang=en"));
        assert_eq!(conn.get(&host, "/docs/").text(), "docs\n");
        let resp = conn.get(&host, "/ten.txt/");
        assert_eq!((resp.status, resp.header("location")), (308, Some("/ten.txt")));
        assert_eq!(conn.get(&host, "/empty/").status, 404, "no index and no browsing");
        assert_eq!(conn.get(&host, "/nope.txt").status, 404);
        let resp = request(&proxy, &mut conn, "DELETE /ten.txt HTTP/1.1\r\nHost: HOST");
        assert_eq!((resp.status, resp.header("allow")), (405, Some("GET, HEAD")));
    }
}

per_driver! {
    fn paths_never_leave_the_root(setup) {
        let dir = client_app();
        let proxy = Proxy::start(&plain(&dir), setup);
        let mut conn = proxy.connect();
        let host = proxy.host();
        for path in ["/../outside.txt", "/%2e%2e/outside.txt", "/assets/..%2f..%2foutside.txt", "/..%2Foutside.txt"] {
            let resp = conn.get(&host, path);
            assert_eq!(resp.status, 404, "{path}");
            assert!(!resp.text().contains("outside"), "{path}");
        }
        assert_eq!(conn.get(&host, "/assets/%2e%2e/ten.txt").text(), "0123456789");
        assert_eq!(conn.get(&host, "/inside.txt").text(), "0123456789", "a symlink within the root");
        if proxy.skip_on_caddy("Caddy follows symlinks out of the root and serves dotfiles") {
            return;
        }
        assert_eq!(conn.get(&host, "/escape.txt").status, 404);
        for path in ["/.env", "/.git/config", "/assets/../.env", "/%2eenv"] {
            assert_eq!(conn.get(&host, path).status, 404, "{path}");
        }
    }
}

per_driver! {
    fn a_large_file_arrives_byte_exact(setup) {
        let dir = client_app();
        let big = pattern(5 << 20);
        let site = Path::new(&site_dir(&dir)).join("audio.bin");
        fs::write(&site, &big).unwrap();
        let proxy = Proxy::start(&plain(&dir), setup);
        let mut conn = proxy.connect();
        let resp = conn.get(&proxy.host(), "/audio.bin");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_len, big.len() as u64);
        assert_eq!(resp.body_sha256, sha256_hex(&big));
        assert_eq!(resp.header("content-type"), Some("application/octet-stream"));
        let resp = request(&proxy, &mut conn, "GET /audio.bin HTTP/1.1\r\nHost: HOST\r\nRange: bytes=1000000-");
        assert_eq!(resp.status, 206);
        assert_eq!(resp.body_sha256, sha256_hex(&big[1_000_000..]));
    }
}

per_driver! {
    fn try_files_tries_files_then_directories_then_answers_its_status(setup) {
        let dir = client_app();
        let caddyfile = format!(
            "$SITE {{\n\troot * {}\n\ttry_files {{path}} {{path}}/ =410\n\tfile_server {{\n\t\thide assets\n\t}}\n}}\n",
            site_dir(&dir)
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let mut conn = proxy.connect();
        let host = proxy.host();
        assert_eq!(conn.get(&host, "/ten.txt").text(), "0123456789");
        // `{path}/` matched: the index is served, behind the canonical redirect (as in Caddy,
        // which judges the trailing slash by the request, not by the rewrite).
        let docs = conn.get(&host, "/docs");
        assert_eq!((docs.status, docs.header("location")), (308, Some("/docs/")));
        assert_eq!(conn.get(&host, "/docs/").text(), "docs\n");
        assert_eq!(conn.get(&host, "/nope").status, 410);
        assert_eq!(conn.get(&host, "/empty/").status, 404, "a directory without an index");
        // As in Caddy, a candidate may be a hidden file; the file server then refuses it.
        assert_eq!(conn.get(&host, "/assets/app.js").status, 404);
    }
}

per_driver! {
    fn handle_path_serves_the_app_under_a_prefix(setup) {
        let dir = client_app();
        let caddyfile = format!(
            "$SITE {{\n\thandle_path /client/* {{\n\t\troot * {}\n\t\ttry_files {{path}} /index.html\n\t\tfile_server\n\t}}\n\trespond 404\n}}\n",
            site_dir(&dir)
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let mut conn = proxy.connect();
        let host = proxy.host();
        assert_eq!(conn.get(&host, "/client/ten.txt").text(), "0123456789");
        assert_eq!(conn.get(&host, "/client/deep/link").text(), INDEX);
        // `{path}` matches files only (as in Caddy), so a directory falls back to the app too.
        assert_eq!(conn.get(&host, "/client/docs").text(), INDEX);
        assert_eq!(conn.get(&host, "/client/docs/").text(), INDEX);
        assert_eq!(conn.get(&host, "/ten.txt").status, 404, "outside the prefix");
    }
}

per_driver! {
    fn header_ops_reach_file_answers_and_only_immediate_ones_reach_its_errors(setup) {
        let dir = client_app();
        let caddyfile = format!(
            "$SITE {{\n\theader Strict-Transport-Security \"max-age=31536000\"\n\t\
             header /assets/* {{\n\t\tCache-Control \"public, max-age=3600\"\n\t\t-Accept-Ranges\n\t}}\n\t\
             root * {}\n\tfile_server\n}}\n",
            site_dir(&dir)
        );
        let proxy = Proxy::start(&caddyfile, setup);
        let mut conn = proxy.connect();
        let host = proxy.host();
        let page = conn.get(&host, "/index.html");
        assert_eq!(page.text(), INDEX);
        assert_eq!(page.header("strict-transport-security"), Some("max-age=31536000"));
        assert_eq!(page.header("cache-control"), None);
        let asset = conn.get(&host, "/assets/app.js");
        assert_eq!(asset.text(), APP_JS);
        assert_eq!(asset.header("strict-transport-security"), Some("max-age=31536000"));
        assert_eq!(asset.header("cache-control"), Some("public, max-age=3600"));
        assert_eq!(asset.header("accept-ranges"), None, "a deferred delete reaches the file");
        let missing = conn.get(&host, "/nothing-here");
        assert_eq!(missing.status, 404);
        assert_eq!(missing.header("strict-transport-security"), Some("max-age=31536000"));
        let missing_asset = conn.get(&host, "/assets/nothing.js");
        assert_eq!(missing_asset.status, 404);
        assert_eq!(missing_asset.header("cache-control"), None, "an error gets no deferred op");
    }
}

per_driver! {
    fn encode_compresses_whole_text_files_and_leaves_ranges_and_small_files_alone(setup) {
        use std::io::Read as _;
        let dir = client_app();
        let transcript: String = (0..4000).map(|i| format!("line {i} of the transcript\n")).collect();
        fs::write(dir.path().join("site/transcript.txt"), &transcript).unwrap();
        let caddyfile =
            format!("$SITE {{\n\tencode gzip\n\troot * {}\n\tfile_server\n}}\n", site_dir(&dir));
        let proxy = Proxy::start(&caddyfile, setup);
        let mut conn = proxy.connect();
        let whole = request(&proxy, &mut conn, "GET /transcript.txt HTTP/1.1\r\nHost: HOST\r\nAccept-Encoding: gzip");
        assert_eq!(whole.status, 200);
        assert_eq!(whole.header("content-encoding"), Some("gzip"));
        assert_eq!(whole.header("content-length"), None);
        assert!(whole.header("etag").is_some_and(|e| e.ends_with("-gzip\"")), "{:?}", whole.header("etag"));
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(&whole.body[..]).read_to_string(&mut decoded).unwrap();
        assert_eq!(decoded, transcript);
        assert!(whole.body.len() < transcript.len() / 4);
        let part = request(&proxy, &mut conn, "GET /transcript.txt HTTP/1.1\r\nHost: HOST\r\nAccept-Encoding: gzip\r\nRange: bytes=0-9");
        assert_eq!((part.status, part.header("content-encoding")), (206, None));
        assert_eq!(part.text(), "line 0 of ");
        let small = request(&proxy, &mut conn, "GET /ten.txt HTTP/1.1\r\nHost: HOST\r\nAccept-Encoding: gzip");
        assert_eq!((small.header("content-encoding"), small.text().as_str()), (None, "0123456789"));
        let plain = request(&proxy, &mut conn, "GET /transcript.txt HTTP/1.1\r\nHost: HOST");
        assert_eq!((plain.header("content-encoding"), plain.text()), (None, transcript));
    }
}
