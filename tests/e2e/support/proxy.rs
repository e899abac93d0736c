//! A TCP proxy in front of moto's STS, one per test: it counts `GetCallerIdentity` requests, telling
//! tfshim's (its user agent carries `app/tfshim`) from terraform's, and can be made slow or refuse
//! connections, to simulate a slow or an unreachable STS.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

#[derive(Default)]
struct Shared {
    tfshim_calls: AtomicUsize,
    other_calls: AtomicUsize,
    /// Accept, then close at once: a network error for the client.
    refuse: AtomicBool,
    /// Hold every new connection this long before forwarding it (a slow STS).
    delay_ms: AtomicU64,
}

pub struct StsProxy {
    pub port: u16,
    shared: Arc<Shared>,
}

impl StsProxy {
    pub fn start(upstream: u16) -> StsProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                thread::spawn(move || serve(conn, upstream, s));
            }
        });
        StsProxy { port, shared }
    }

    /// GetCallerIdentity requests sent by tfshim.
    pub fn tfshim_calls(&self) -> usize {
        self.shared.tfshim_calls.load(Ordering::SeqCst)
    }

    /// GetCallerIdentity requests sent by anything else (terraform).
    pub fn other_calls(&self) -> usize {
        self.shared.other_calls.load(Ordering::SeqCst)
    }

    /// From now on, answer every request only after `delay` (a slow STS).
    pub fn delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// From now on, accept connections and close them at once (an unreachable STS).
    pub fn refuse_connections(&self) {
        self.shared.refuse.store(true, Ordering::SeqCst);
    }
}

fn serve(client: TcpStream, upstream: u16, shared: Arc<Shared>) {
    if shared.refuse.load(Ordering::SeqCst) {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        thread::sleep(Duration::from_millis(delay));
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut s_read, mut c_write) = (server, client);
    let back = thread::spawn(move || {
        let _ = std::io::copy(&mut s_read, &mut c_write);
        let _ = c_write.shutdown(Shutdown::Write);
    });
    // Client → server, counting requests as they pass (before they are forwarded).
    let mut seen = Vec::new();
    let mut counted = 0;
    let mut buf = [0u8; 16 * 1024];
    let _ = c_read.set_read_timeout(Some(Duration::from_secs(120)));
    loop {
        let n = match c_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        seen.extend_from_slice(&buf[..n]);
        let total = count(&seen, b"GetCallerIdentity");
        if total > counted {
            let by_tfshim = count(&seen, b"app/tfshim") > 0;
            let counter = if by_tfshim {
                &shared.tfshim_calls
            } else {
                &shared.other_calls
            };
            counter.fetch_add(total - counted, Ordering::SeqCst);
            counted = total;
        }
        if s_write.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = s_write.shutdown(Shutdown::Write);
    let _ = back.join();
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}
