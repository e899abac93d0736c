//! A forward HTTP proxy on loopback, as a corporate proxy would be: absolute-form requests
//! (`POST http://host:port/ HTTP/1.1`) and `CONNECT host:port` tunnels. Every host name is sent to
//! 127.0.0.1, so a name no DNS knows (`sts.tfshim.test`) is reachable only through it. It serves
//! until the test process exits.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

pub struct ForwardProxy {
    pub port: u16,
    connections: Arc<AtomicUsize>,
}

impl ForwardProxy {
    pub fn start() -> ForwardProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind forward proxy");
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                thread::spawn(move || serve(conn));
            }
        });
        ForwardProxy { port, connections }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections the proxy accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn serve(mut client: TcpStream) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let rest = data[head_end..].to_vec();
    let first = head.lines().next().unwrap_or("");
    let mut parts = first.split_whitespace();
    let (method, target, version) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("HTTP/1.1"),
    );
    let port_of = |authority: &str, default: u16| {
        authority
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(default)
    };
    let (port, forward) = if method.eq_ignore_ascii_case("CONNECT") {
        (port_of(target, 443), None)
    } else if let Some(rest_of_url) = target.strip_prefix("http://") {
        let (authority, path) = match rest_of_url.find('/') {
            Some(i) => (&rest_of_url[..i], &rest_of_url[i..]),
            None => (rest_of_url, "/"),
        };
        let origin_form = head.replacen(first, &format!("{method} {path} {version}"), 1);
        (port_of(authority, 80), Some(origin_form))
    } else {
        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", port)) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    match forward {
        None => {
            if client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .is_err()
            {
                return;
            }
        }
        Some(head) => {
            if upstream.write_all(head.as_bytes()).is_err() {
                return;
            }
        }
    }
    if !rest.is_empty() && upstream.write_all(&rest).is_err() {
        return;
    }
    let (mut c_read, mut u_write) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let back = thread::spawn(move || {
        let _ = std::io::copy(&mut upstream, &mut client);
        let _ = client.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut c_read, &mut u_write);
    let _ = u_write.shutdown(Shutdown::Write);
    let _ = back.join();
}
