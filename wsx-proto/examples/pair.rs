//! An in-memory client and server: the opening handshake, a few messages, a ping and the closing
//! handshake, with every byte that crosses the "wire" printed.
//!
//! `cargo run -p wsx-proto --example pair`

use bytes::BytesMut;
use wsx_proto::*;

fn show(from: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if bytes.starts_with(b"GET ") || bytes.starts_with(b"HTTP/") {
        println!("{from} sends:\n{}", text.trim_end());
    } else {
        println!("{from} sends {} bytes: {:02x?}", bytes.len(), &bytes[..bytes.len().min(24)]);
    }
}

fn pump(from: &str, tx: &mut Connection, rx: &mut Connection, to: &str) {
    while let Some(bytes) = tx.next_transmit() {
        show(from, &bytes);
        rx.receive(&bytes);
    }
    while let Ok(Some(message)) = rx.next_message() {
        println!("{to} got {message:?}");
    }
}

fn main() {
    let limits = Limits::default();

    // Opening handshake (RFC 6455 §4).
    let handshake = ClientRequest::new("ws://server.example.com/chat")
        .origin("http://example.com")
        .subprotocols(["chat", "superchat"])
        .build(Key::random())
        .expect("a valid URL");
    let mut wire = BytesMut::new();
    handshake.write_request(&mut wire);
    show("client", &wire);

    let request = parse_request(&wire, &limits).expect("valid").expect("complete").value;
    let upgrade = Upgrade::from_request(&request).expect("a valid upgrade");
    let chosen = upgrade.choose_subprotocol(["chat"]);
    let (response, server_negotiated) =
        upgrade.respond(Accept::new().subprotocol(chosen)).expect("chat was offered");
    let mut answer = BytesMut::new();
    write_response(&response, &mut answer);
    show("server", &answer);

    let accepted = handshake.read_response(&answer, &limits).expect("valid").expect("complete");
    println!("negotiated subprotocol: {:?}\n", accepted.value.negotiated.subprotocol());

    // Data transfer (RFC 6455 §5, §6).
    let mut client = Connection::new(Role::Client, &accepted.value.negotiated, Config::default());
    let mut server = Connection::new(Role::Server, &server_negotiated, Config::default());
    client.send(Message::text("Hello")).expect("open");
    client.send(Message::Ping("are you there?".into())).expect("open");
    pump("client", &mut client, &mut server, "server");
    server.send(Message::binary(vec![1u8, 2, 3])).expect("open");
    pump("server", &mut server, &mut client, "client");

    // Closing handshake (RFC 6455 §7).
    client.send(Message::close(CloseCode::NORMAL, "bye")).expect("open");
    pump("client", &mut client, &mut server, "server");
    pump("server", &mut server, &mut client, "client");
    println!(
        "\nclient: {:?}, server: {:?}; server closes TCP first: {}",
        client.close_state(),
        server.close_state(),
        server.should_close_tcp()
    );
}
