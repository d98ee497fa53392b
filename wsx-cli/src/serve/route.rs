//! Where a request to `wsx serve` goes, by its path: the routing table that the direct upgrade
//! path (`conn.rs`) and the hyper service (`http.rs`) share.

/// Where a request goes.
pub(super) enum Route {
    Page,
    Favicon,
    Health,
    Metrics,
    Echo,
    Chat(String),
    NotFound,
}

/// The route of `path`.
pub(super) fn route(path: &str) -> Route {
    match path {
        "/" | "/index.html" => Route::Page,
        "/favicon.ico" => Route::Favicon,
        "/healthz" => Route::Health,
        "/metrics" => Route::Metrics,
        "/echo" => Route::Echo,
        _ => match path.strip_prefix("/chat/") {
            Some(room) if valid_room(room) => Route::Chat(room.to_string()),
            _ => Route::NotFound,
        },
    }
}

/// Room names: 1 to 64 letters, digits, `-`, `_` or `.`.
fn valid_room(room: &str) -> bool {
    (1..=64).contains(&room.len())
        && room.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(matches!(route("/"), Route::Page));
        assert!(matches!(route("/echo"), Route::Echo));
        assert!(matches!(route("/chat/lobby-1"), Route::Chat(r) if r == "lobby-1"));
        assert!(matches!(route("/chat/"), Route::NotFound));
        assert!(matches!(route("/chat/a/b"), Route::NotFound));
        assert!(matches!(route("/nope"), Route::NotFound));
    }
}
