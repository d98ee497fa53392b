//! Where a request to `wsx serve` goes, by its path: the routing table that the direct upgrade
//! path (`conn.rs`) and the hyper service (`http.rs`) share.

/// Where a request goes.
pub(super) enum Route {
    Page,
    Favicon,
    Health,
    Metrics,
    /// The developer console (with --devconsole).
    DevConsole,
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
        "/devconsole" => Route::DevConsole,
        "/echo" => Route::Echo,
        _ => match path.strip_prefix("/chat/") {
            Some(room) if valid_room(room) => Route::Chat(room.to_string()),
            _ => Route::NotFound,
        },
    }
}

/// Where a WebSocket upgrade goes.
pub(super) enum Target {
    Echo,
    Chat(String),
    /// The program of --exec, --exec-dir or --exec-shared.
    Exec,
    /// The TCP server of a --tcp-forward path (its HOST:PORT).
    Forward(String),
}

/// Where a WebSocket upgrade to `path` goes: the TCP server `forward` of a --tcp-forward path,
/// echo, a chat room, or, when `exec` (--exec, --exec-dir or --exec-shared), the program, for
/// every path not served otherwise (`/` included); `None`: nowhere (404).
pub(super) fn target(path: &str, exec: bool, forward: Option<&str>) -> Option<Target> {
    if let Some(to) = forward {
        return Some(Target::Forward(to.to_string()));
    }
    match route(path) {
        Route::Echo => Some(Target::Echo),
        Route::Chat(room) => Some(Target::Chat(room)),
        Route::Page | Route::DevConsole | Route::NotFound if exec => Some(Target::Exec),
        Route::Page
        | Route::Favicon
        | Route::Health
        | Route::Metrics
        | Route::DevConsole
        | Route::NotFound => None,
    }
}

/// Whether a --tcp-forward path may take `path`: only one that nothing else serves (`/`, whose
/// upgrades no built-in endpoint takes, included).
pub(super) fn free_for_forward(path: &str) -> bool {
    matches!(route(path), Route::Page | Route::DevConsole | Route::NotFound)
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
        assert!(matches!(route("/devconsole"), Route::DevConsole));
    }

    #[test]
    fn upgrades_go_to_the_program_only_where_nothing_else_is() {
        let target = |path, exec| target(path, exec, None);
        assert!(target("/nope", false).is_none());
        assert!(target("/", false).is_none());
        assert!(matches!(target("/nope", true), Some(Target::Exec)));
        assert!(matches!(target("/", true), Some(Target::Exec)));
        assert!(matches!(target("/echo", true), Some(Target::Echo)));
        assert!(matches!(target("/chat/r", true), Some(Target::Chat(r)) if r == "r"));
        assert!(target("/healthz", true).is_none());
        assert!(target("/metrics", true).is_none());
        assert!(target("/devconsole", false).is_none());
        assert!(matches!(target("/devconsole", true), Some(Target::Exec)));
    }

    #[test]
    fn forwarded_paths_win_but_take_no_built_in_endpoint() {
        let to = "127.0.0.1:6379";
        assert!(matches!(target("/redis", true, Some(to)), Some(Target::Forward(t)) if t == to));
        assert!(free_for_forward("/redis") && free_for_forward("/"));
        for taken in ["/echo", "/chat/r", "/healthz", "/metrics", "/favicon.ico"] {
            assert!(!free_for_forward(taken), "{taken}");
        }
    }
}
