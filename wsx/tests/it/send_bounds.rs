//! The public futures and types can move between tasks of a multi-threaded runtime.

use wsx::{ClientStream, Connector, Error, Message, ReadHalf, WebSocket, WriteHalf};

fn assert_send<T: Send>(_: &T) {}
fn assert_send_sync<T: Send + Sync>() {}

#[allow(dead_code, clippy::diverging_sub_expression)] // only type-checked, never run
async fn futures_are_send(mut ws: WebSocket<ClientStream>, connector: Connector) {
    assert_send(&connector.connect("ws://127.0.0.1:1/"));
    assert_send(&ws.send(Message::text("x")));
    assert_send(&ws.recv());
    assert_send(&ws.close(wsx::CloseCode::NORMAL, ""));
    assert_send(&wsx::accept(tokio::io::duplex(64).0));
}

#[test]
fn types_are_send_and_sync() {
    assert_send_sync::<Connector>();
    assert_send_sync::<wsx::Acceptor>();
    assert_send_sync::<Error>();
    assert_send_sync::<WebSocket<ClientStream>>();
    assert_send_sync::<ReadHalf<ClientStream>>();
    assert_send_sync::<WriteHalf<ClientStream>>();
}
