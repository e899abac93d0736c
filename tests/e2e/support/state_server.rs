//! A GitLab-like Terraform state server on 127.0.0.1, started by the tests themselves: basic auth
//! with revocable tokens (401 for a wrong or revoked token, as GitLab answers), `GET`/`HEAD`/`POST`
//! of state at `/state/NAME`, locking at `/state/NAME/lock` (`POST` to lock, `DELETE` to unlock: the
//! `lock_method`/`unlock_method` GitLab documents), and a log of every request (method, path, user
//! agent, whether its credentials were accepted) so tests can count checks.
//!
//! Plain `std` threads, one per connection, `Connection: close`: enough for terraform's Go client.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub user_agent: String,
    pub authorized: bool,
    /// Bytes of the answer written (head and body): what the client was sent.
    pub bytes_sent: usize,
}

#[derive(Default)]
struct State {
    /// user → valid tokens.
    tokens: HashMap<String, HashSet<String>>,
    states: HashMap<String, Vec<u8>>,
    locks: HashMap<String, String>,
    log: Vec<Logged>,
    /// Answer every `HEAD` with this status before looking at its credentials: 405 as a server
    /// without `HEAD`, 403 as a front end that refuses it.
    head_answer: Option<u16>,
    /// Answer every request with this status (a failing server).
    fail_with: Option<u16>,
    /// Serve requests without an `Authorization` header (state open to anyone who can reach the
    /// server, e.g. behind an IP allow-list); wrong credentials still get 401.
    anonymous: bool,
}

pub struct StateServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl StateServer {
    pub fn start() -> StateServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || handle(conn, &s));
            }
        });
        StateServer { port, state, stop }
    }

    /// `http://127.0.0.1:PORT/state/NAME`.
    pub fn address(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/state/{name}", self.port)
    }

    pub fn lock_address(&self, name: &str) -> String {
        format!("{}/lock", self.address(name))
    }

    pub fn grant(&self, user: &str, token: &str) {
        let mut s = self.state.lock().unwrap();
        s.tokens
            .entry(user.to_owned())
            .or_default()
            .insert(token.to_owned());
    }

    pub fn revoke(&self, token: &str) {
        let mut s = self.state.lock().unwrap();
        for tokens in s.tokens.values_mut() {
            tokens.remove(token);
        }
    }

    pub fn set_head_answer(&self, status: Option<u16>) {
        self.state.lock().unwrap().head_answer = status;
    }

    /// Requests without credentials are served (see `State::anonymous`).
    pub fn allow_anonymous(&self) {
        self.state.lock().unwrap().anonymous = true;
    }

    pub fn fail_with(&self, status: Option<u16>) {
        self.state.lock().unwrap().fail_with = status;
    }

    pub fn state_of(&self, name: &str) -> Option<Vec<u8>> {
        self.state.lock().unwrap().states.get(name).cloned()
    }

    pub fn locked(&self, name: &str) -> bool {
        self.state.lock().unwrap().locks.contains_key(name)
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// Requests tfshim made (its user agent says so).
    pub fn tfshim_requests(&self) -> Vec<Logged> {
        self.log()
            .into_iter()
            .filter(|l| l.user_agent.starts_with("tfshim"))
            .collect()
    }
}

impl StateServer {
    /// Stops listening: the port refuses connections from now on (a server that is down).
    pub fn stop(&self) {
        if !self.stop.swap(true, Ordering::SeqCst) {
            // Wake the accept loop so that it sees the flag and drops the listener.
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for StateServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Decodes standard base64 (the `Authorization: Basic` value).
fn unbase64(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

fn handle(mut conn: TcpStream, state: &Mutex<State>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let target = first.next().unwrap_or("").to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buf[head_end..].to_vec();
    let (path, _query) = target.split_once('?').unwrap_or((&target, ""));
    let path = path.to_owned();

    let mut s = state.lock().unwrap();
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(unbase64)
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            let (user, token) = pair.split_once(':')?;
            Some(s.tokens.get(user).is_some_and(|t| t.contains(token)))
        })
        .unwrap_or(false)
        || (s.anonymous && !headers.contains_key("authorization"));
    let (status, reply): (u16, Vec<u8>) = if let Some(code) = s.fail_with {
        (code, b"failing on purpose".to_vec())
    } else if let Some(code) = s.head_answer.filter(|_| method == "HEAD") {
        (code, Vec::new())
    } else if !authorized {
        (401, br#"{"message":"401 Unauthorized"}"#.to_vec())
    } else {
        let name = path.trim_start_matches("/state/");
        match (method.as_str(), name.strip_suffix("/lock")) {
            ("GET" | "HEAD", None) => match s.states.get(name) {
                Some(st) => (200, st.clone()),
                None => (404, Vec::new()),
            },
            ("POST", None) => {
                s.states.insert(name.to_owned(), body.clone());
                (200, Vec::new())
            }
            ("POST", Some(n)) => match s.locks.get(n) {
                Some(held) => (409, held.clone().into_bytes()),
                None => {
                    s.locks
                        .insert(n.to_owned(), String::from_utf8_lossy(&body).into_owned());
                    (200, Vec::new())
                }
            },
            ("DELETE", Some(n)) => {
                s.locks.remove(n);
                (200, Vec::new())
            }
            _ => (405, Vec::new()),
        }
    };
    let mut answer = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.len()
    )
    .into_bytes();
    if method != "HEAD" {
        answer.extend_from_slice(&reply);
    }
    s.log.push(Logged {
        method,
        path,
        user_agent: headers.get("user-agent").cloned().unwrap_or_default(),
        authorized,
        bytes_sent: answer.len(),
    });
    drop(s);
    let _ = conn.write_all(&answer);
    let _ = conn.flush();
    let _ = conn.shutdown(Shutdown::Write);
}
