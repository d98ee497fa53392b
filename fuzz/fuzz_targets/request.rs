//! The server's request parser and upgrade checks: any bytes, any split point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsx_proto::{parse_request, parse_request_shared, Accept, Limits, Upgrade};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default().max_head_size(4096).max_headers(32);
    // Every prefix must give "incomplete", the same head, or an error with a status.
    let whole = parse_request(data, &limits);
    // Sharing the buffer instead of copying changes nothing in what is parsed.
    let shared = parse_request_shared(&bytes::Bytes::copy_from_slice(data), &limits);
    match (&whole, &shared) {
        (Ok(None), Ok(None)) => {}
        (Ok(Some(a)), Ok(Some(b))) => {
            assert_eq!(a.len, b.len);
            let (a, b) = (&a.value, &b.value);
            assert_eq!(a.method(), b.method());
            assert_eq!(a.uri(), b.uri());
            assert_eq!(a.version(), b.version());
            assert_eq!(a.headers(), b.headers());
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("parse_request and parse_request_shared disagree"),
    }
    if let Some(cut) = data.first().map(|&b| usize::from(b) % (data.len() + 1)) {
        if let Ok(Some(prefix)) = parse_request(&data[..cut], &limits) {
            let whole = whole.as_ref().expect("a prefix parsed, so the whole parses");
            assert_eq!(prefix.len, whole.as_ref().expect("complete").len);
        }
    }
    match whole {
        Ok(Some(parsed)) => {
            assert!(parsed.len <= data.len() && parsed.len <= 4096);
            match Upgrade::from_request(&parsed.value) {
                Ok(upgrade) => {
                    let chosen = upgrade.subprotocols().first().cloned();
                    let (response, _) =
                        upgrade.respond(Accept::new().subprotocol(chosen.as_deref())).unwrap();
                    assert_eq!(response.status(), 101);
                }
                Err(e) => {
                    let response = e.to_response().expect("request errors have a status");
                    assert!(response.status().is_client_error());
                }
            }
        }
        Ok(None) => assert!(data.len() <= 4096),
        Err(e) => assert!(e.status().is_some_and(|s| s.is_client_error())),
    }
});
