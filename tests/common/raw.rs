//! Raw HTTP/1.1 over loopback sockets, for the servers' limits: heads that
//! are too large or never end, and connections over the cap.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long a client waits for an answer before giving up.
const WAIT: Duration = Duration::from_secs(60);

/// Sends `request` on a new connection to `port` (a write cut short by the
/// server is ignored); returns what came back before the connection ended.
pub fn exchange(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends the start of a head that never ends; asserts that the server closes
/// the connection (long before the client would give up) and returns what
/// it answered first, if anything.
pub fn cut_off(port: u16, partial_head: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(partial_head).unwrap();
    let mut out = Vec::new();
    let read = s.read_to_end(&mut out);
    assert!(read.is_ok(), "the connection was not cut: {read:?}");
    String::from_utf8_lossy(&out).into_owned()
}

/// Holds `cap` idle connections open and sends `request` on one more; true
/// when that one is answered 429. Tried up to ten times, each with fresh
/// connections: the server may not have accepted the held ones yet, and
/// cuts idle ones after its header timeout.
pub fn refused_over_the_cap(port: u16, cap: usize, request: &[u8]) -> bool {
    (0..10).any(|_| {
        let held: Vec<TcpStream> = (0..cap)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        let busy = exchange(port, request).starts_with("HTTP/1.1 429");
        drop(held);
        busy
    })
}
