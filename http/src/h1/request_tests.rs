use super::*;

const LIMITS: HeadLimits = HeadLimits { max_header_bytes: 8192, max_headers: 32 };

fn parse(s: &str) -> Result<Option<ParsedRequest>, LocalReply> {
    let mut b = BytesMut::from(s);
    parse_request(&mut b, LIMITS, Headers::default())
}

fn ok(s: &str) -> ParsedRequest {
    parse(s).expect("accepted").expect("complete")
}

fn status(s: &str) -> u16 {
    match parse(s) {
        Err(r) => r.status,
        Ok(_) => 0,
    }
}

#[test]
fn parses_zero_copy_and_leaves_body() {
    let mut b = BytesMut::from("POST /a/b?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET");
    let p = parse_request(&mut b, LIMITS, Headers::default()).expect("ok").expect("complete");
    assert_eq!(&p.head.path[..], b"/a/b");
    assert_eq!(p.head.query.as_deref(), Some(&b"x=1"[..]));
    assert_eq!(p.body, ReqBody::Length(3));
    assert_eq!(&b[..], b"abcGET");
    assert!(p.keep_alive);
}

#[test]
fn partial_head_asks_for_more() {
    assert!(parse("GET / HTTP/1.1\r\nHost: h\r\n").expect("ok").is_none());
}

#[test]
fn limits_give_431() {
    let long = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n", "a".repeat(9000));
    assert_eq!(status(&long), 431);
    let mut many = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
    for i in 0..40 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(status(&many), 431);
    // An incomplete head already past the limit is refused without waiting for more.
    let mut b = BytesMut::from(format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(9000)).as_str());
    assert_eq!(parse_request(&mut b, LIMITS, Headers::default()).err().map(|r| r.status), Some(431));
}

#[test]
fn smuggling_shapes_are_refused() {
    assert_eq!(
        status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
        400
    );
    assert_eq!(status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"), 400);
    assert_eq!(status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\n"), 400);
    assert_eq!(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501);
    assert_eq!(status("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 501);
    assert_eq!(status("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"), 400, "obs-fold");
    assert_eq!(status("GET / HTTP/1.1\r\nHost: h\rX: a\r\n\r\n"), 400, "bare CR");
    assert_eq!(status("GET / HTTP/1.1\r\nHost: h\r\nBad Name: a\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/1.1\r\nHost: h\r\nBad(: a\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), 400);
    assert_eq!(status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
}

#[test]
fn identical_duplicate_lengths_collapse_to_one() {
    let p = ok("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nhi");
    assert_eq!(p.body, ReqBody::Length(2));
    assert_eq!(p.head.headers.get_all("content-length").count(), 1);
}

#[test]
fn host_rules() {
    assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400);
    let p = ok("GET / HTTP/1.0\r\n\r\n");
    assert!(p.head.authority.is_none());
    let p = ok("GET http://example.com:8080/x?y HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(p.head.authority.as_deref(), Some(&b"example.com:8080"[..]));
    assert_eq!(&p.head.path[..], b"/x");
    assert_eq!(p.head.headers.get("host").map(|v| &v[..]), Some(&b"example.com:8080"[..]));
}

#[test]
fn keep_alive_by_version() {
    assert!(!ok("GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(ok("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    assert!(!ok("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive);
}

#[test]
fn hop_by_hop_removed_and_expect_understood() {
    let p = ok(
        "POST / HTTP/1.1\r\nHost: h\r\nConnection: X-Hop\r\nX-Hop: 1\r\nTE: trailers\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
    );
    assert!(p.expect_continue);
    assert!(p.head.headers.get("x-hop").is_none());
    assert!(p.head.headers.get("te").is_none());
    assert!(p.head.headers.get("expect").is_none());
    assert_eq!(status("GET / HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n"), 417);
}

#[test]
fn dot_segments_and_targets() {
    assert_eq!(&ok("GET /public/../admin HTTP/1.1\r\nHost: h\r\n\r\n").head.path[..], b"/admin");
    assert_eq!(status("GET /../etc HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(status("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(&ok("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").head.path[..], b"*");
    assert_eq!(status("CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n"), 501);
    assert_eq!(status("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
}

#[test]
fn malformed_request_line_is_400_not_505() {
    assert_eq!(status("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(status("GET /a HTTP/1.1 x\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(status("GET /a FTP/1.1\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/3.1\r\nHost: h\r\n\r\n"), 505);
}

#[test]
fn pipelined_requests_parse_in_order() {
    let mut b = BytesMut::from("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
    let a = parse_request(&mut b, LIMITS, Headers::default()).expect("ok").expect("first");
    let c = parse_request(&mut b, LIMITS, Headers::default()).expect("ok").expect("second");
    assert_eq!(&a.head.path[..], b"/1");
    assert_eq!(&c.head.path[..], b"/2");
    assert!(b.is_empty());
}

mod fuzz {
    //! Property tests standing in for a fuzzer in CI (the cargo-fuzz target in `http/fuzz`
    //! needs a nightly toolchain): the parser never panics, never consumes more than it was
    //! given, and accepts exactly the well-formed requests it is shown, however they are split.
    use super::*;
    use proptest::prelude::*;

    fn feed(bytes: &[u8], split: usize) -> Result<Option<(ParsedRequest, usize)>, LocalReply> {
        let mut buf = BytesMut::new();
        for piece in bytes.chunks(split.max(1)) {
            buf.extend_from_slice(piece);
            let before = buf.len();
            if let Some(p) = parse_request(&mut buf, LIMITS, Headers::default())? {
                let consumed = before - buf.len();
                assert!(consumed <= before);
                return Ok(Some((p, consumed)));
            }
        }
        Ok(None)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), split in 1usize..64) {
            let _ = feed(&bytes, split);
        }

        #[test]
        fn mutated_requests_never_panic(
            pos in 0usize..80,
            byte in any::<u8>(),
            split in 1usize..32,
        ) {
            let mut req = b"POST /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabc".to_vec();
            let at = pos % req.len();
            req[at] = byte;
            let _ = feed(&req, split);
        }

        #[test]
        fn well_formed_requests_parse_whatever_the_split(
            path in "/[a-z0-9/]{0,40}",
            names in proptest::collection::vec("[A-Za-z][A-Za-z0-9-]{0,15}", 0..10),
            value in "[ -~]{0,30}",
            split in 1usize..50,
        ) {
            let mut req = format!("GET {path} HTTP/1.1\r\nHost: h\r\n");
            for n in &names {
                if !n.eq_ignore_ascii_case("host") && !n.eq_ignore_ascii_case("content-length")
                    && !n.eq_ignore_ascii_case("transfer-encoding") && !n.eq_ignore_ascii_case("expect") {
                    req.push_str(&format!("X-{n}: {}\r\n", value.trim()));
                }
            }
            req.push_str("\r\n");
            let (p, consumed) = feed(req.as_bytes(), split).expect("accepted").expect("complete");
            prop_assert_eq!(consumed, req.len());
            prop_assert_eq!(p.body, ReqBody::None);
            prop_assert!(p.head.path.starts_with(b"/"));
        }
    }
}
