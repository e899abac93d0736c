//! A TCP proxy in front of moto's STS, one per test: it counts `GetCallerIdentity` requests, telling
//! tfshim's (its user agent carries `app/tfshim`) from terraform's, and can be made slow or refuse
//! connections, to simulate a slow or an unreachable STS.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Shared {
    tfshim_calls: AtomicUsize,
    other_calls: AtomicUsize,
    /// Accept, then close at once: a network error for the client.
    refuse: AtomicBool,
    /// Hold every new connection this long before forwarding it (a slow STS).
    delay_ms: AtomicU64,
    /// What tfshim's requests get instead of moto's answer.
    fault: Mutex<Option<Fault>>,
    /// Requests signed by one key id, from anyone, meet a fault (see [`StsProxy::fault_for_key`]).
    key_faults: Mutex<Vec<KeyFault>>,
    /// Connections whose first request was signed by each key id.
    by_key: Mutex<Vec<(String, usize)>>,
}

/// A fault for the requests signed by one key.
struct KeyFault {
    key_id: String,
    /// How long it lasts from the first such request (`None`: for good).
    duration: Option<Duration>,
    first_request: Option<Instant>,
    fault: Fault,
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

    /// From now on, tfshim's requests (only) meet `fault`; terraform's still reach moto.
    pub fn fault_for_tfshim(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap() = Some(fault);
    }

    /// Requests signed by `key_id` (from tfshim or terraform) meet `fault` for `duration` from the
    /// first such request, or for good with `None`; e.g. a key IAM has not yet made valid
    /// everywhere. The clock starts at the first request, not now: on a loaded machine tfshim may
    /// take seconds to get there, and the test is about what happens once it does.
    pub fn fault_for_key(&self, key_id: &str, duration: Option<Duration>, fault: Fault) {
        self.shared.key_faults.lock().unwrap().push(KeyFault {
            key_id: key_id.to_owned(),
            duration,
            first_request: None,
            fault,
        });
    }

    /// Connections (one request each, unless a client reuses them) signed by `key_id`.
    pub fn requests_signed_by(&self, key_id: &str) -> usize {
        let counts = self.shared.by_key.lock().unwrap();
        counts
            .iter()
            .find(|(k, _)| k == key_id)
            .map_or(0, |(_, n)| *n)
    }

    /// From now on, accept connections and close them at once (an unreachable STS).
    pub fn refuse_connections(&self) {
        self.shared.refuse.store(true, Ordering::SeqCst);
    }
}

/// What the proxy does to tfshim's own requests (terraform's always reach moto).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and body.
    Status(u16, String),
    /// Read the request, then close the connection without an answer.
    Close,
    /// Read the request, then never answer (a black hole).
    Hang,
}

/// Reads one HTTP request (head and `Content-Length` body) from `stream`, or what came before EOF.
fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return data;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return data,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

fn serve(mut client: TcpStream, upstream: u16, shared: Arc<Shared>) {
    if shared.refuse.load(Ordering::SeqCst) {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    // The first request tells who is asking (tfshim's user agent carries `app/tfshim`).
    let first = read_request(&mut client);
    let mut seen = Vec::new();
    let mut counted = 0;
    let mut tally = |bytes: &[u8]| {
        seen.extend_from_slice(bytes);
        let total = count(&seen, b"GetCallerIdentity");
        if total > counted {
            let counter = if count(&seen, b"app/tfshim") > 0 {
                &shared.tfshim_calls
            } else {
                &shared.other_calls
            };
            counter.fetch_add(total - counted, Ordering::SeqCst);
            counted = total;
        }
    };
    tally(&first);
    let key = signing_key(&first);
    if let Some(key) = &key {
        let mut counts = shared.by_key.lock().unwrap();
        match counts.iter_mut().find(|(k, _)| k == key) {
            Some((_, n)) => *n += 1,
            None => counts.push((key.clone(), 1)),
        }
    }
    let key_fault = key.and_then(|key| {
        let mut faults = shared.key_faults.lock().unwrap();
        faults.iter_mut().filter(|f| f.key_id == key).find_map(|f| {
            let first = *f.first_request.get_or_insert_with(Instant::now);
            f.duration
                .is_none_or(|d| first.elapsed() < d)
                .then(|| f.fault.clone())
        })
    });
    let fault = shared.fault.lock().unwrap().clone();
    let fault = match (count(&first, b"app/tfshim") > 0, fault) {
        (true, Some(fault)) => Some(fault),
        _ => None,
    };
    if let Some(fault) = key_fault.or(fault) {
        match fault {
            Fault::Status(status, body) => {
                let _ = write!(
                    client,
                    "HTTP/1.1 {status} Fault\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
            Fault::Close => {}
            Fault::Hang => thread::sleep(Duration::from_secs(60)),
        }
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        thread::sleep(Duration::from_millis(delay));
    }
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    if server.write_all(&first).is_err() {
        return;
    }
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut s_read, mut c_write) = (server, client);
    let back = thread::spawn(move || {
        let _ = std::io::copy(&mut s_read, &mut c_write);
        let _ = c_write.shutdown(Shutdown::Write);
    });
    // Client → server, counting requests as they pass (before they are forwarded).
    let mut buf = [0u8; 16 * 1024];
    let _ = c_read.set_read_timeout(Some(Duration::from_secs(120)));
    loop {
        let n = match c_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        tally(&buf[..n]);
        if s_write.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = s_write.shutdown(Shutdown::Write);
    let _ = back.join();
}

/// The access key id in a SigV4 `Authorization` header (`Credential=AKIA…/date/…`).
fn signing_key(request: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(request);
    let start = text.find("Credential=")? + "Credential=".len();
    let end = start + text[start..].find('/')?;
    Some(text[start..end].to_owned())
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}
