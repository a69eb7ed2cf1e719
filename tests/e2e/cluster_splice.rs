//! A kept-alive connection whose first request names an account the other node owns is
//! handed, whole, to that node (issue 17, `web::splice`): it is answered there, the client's
//! address travels with it, a later request for another account on it is still answered
//! correctly (and asks the client to reconnect), users stay apart on it, and nobody without
//! the cluster's secret can pose as a node handing a connection over.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::cluster_serving::{ONE_CLUSTER, SECRET, retrying, shares, stop_cleanly, two_nodes};
use crate::harness::{get, script};

/// One HTTP reply read off a raw connection.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A connection from `from` (a loopback address other than 127.0.0.1, so the client's address
/// is told apart from the nodes').
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("address"))
        .expect("bind");
    socket.connect(to).await.expect("connect")
}

async fn request(s: &mut TcpStream, host: SocketAddr, target: &str) -> Option<Reply> {
    s.write_all(format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    read_reply(s).await
}

/// Reads one reply (`None` if the connection closes first); a body of known length or
/// chunked, or up to the close.
async fn read_reply(s: &mut TcpStream) -> Option<Reply> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut chunk))
            .await
            .expect("a reply in time")
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut rest = buf[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut reply = Reply {
        status,
        headers,
        body: String::new(),
    };
    if let Some(len) = reply.header("content-length") {
        let len: usize = len.parse().ok()?;
        while rest.len() < len {
            if more(s, &mut rest).await == 0 {
                return None;
            }
        }
        reply.body = String::from_utf8_lossy(&rest[..len]).to_string();
    } else if reply.header("transfer-encoding") == Some("chunked") {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                if more(s, &mut rest).await == 0 {
                    return None;
                }
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?, 16).ok()?;
            while rest.len() < line_end + 2 + size + 2 {
                if more(s, &mut rest).await == 0 {
                    return None;
                }
            }
            body.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest.drain(..line_end + 2 + size + 2);
            if size == 0 {
                break;
            }
        }
        reply.body = String::from_utf8_lossy(&body).to_string();
    } else {
        while more(s, &mut rest).await > 0 {}
        reply.body = String::from_utf8_lossy(&rest).to_string();
    }
    Some(reply)
}

/// Whether the peer has closed the connection (within a few seconds).
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_is_handed_to_its_owner_with_the_client_address() {
    let _one = ONE_CLUSTER.lock().await;
    let t = two_nodes().await;
    let n1: SocketAddr = format!("127.0.0.1:{}", t.p1).parse().expect("address");
    let n2: SocketAddr = format!("127.0.0.1:{}", t.p2).parse().expect("address");
    let c = script();
    // b's vshard is n2's. A first request through n1 is forwarded, and n1 now knows b's keys.
    for key in [&t.b.read, &t.b.write] {
        let (status, _) = retrying(&format!("{}/feed/list.json?apikey={key}", t.n1.base)).await;
        assert_eq!(status, 200);
    }
    // a's feed, which b must not read through any path.
    let r = get(
        &c,
        &format!(
            "{}/feed/create.json?tag=t&name=secret&datatype=1&engine=5&options=%7B%22interval%22%3A10%7D&apikey={}",
            t.n1.base, t.a.write
        ),
    )
    .await;
    let a_feed = serde_json::from_str::<serde_json::Value>(&r.body).expect("json")["feedid"]
        .as_i64()
        .unwrap_or_else(|| panic!("feed created: {}", r.body));

    // A kept-alive connection to n1 from 127.0.0.2, first naming b: answered by n2.
    let mut s = connect_from("127.0.0.2", n1).await;
    let set = request(&mut s, n1, &format!("/myip/set.json?apikey={}", t.b.write))
        .await
        .expect("reply");
    assert_eq!((set.status, set.body.as_str()), (200, "ok"));
    assert_eq!(set.header("x-ynni-node"), Some("n2"));
    // Posts on the same connection, all acknowledged.
    for k in 1..=20 {
        let r = request(
            &mut s,
            n1,
            &format!(
                "/input/post.json?node=splice&fulljson=%7B%22power%22%3A{k}%7D&apikey={}",
                t.b.write
            ),
        )
        .await
        .expect("reply");
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-ynni-node"), Some("n2"));
        assert_ne!(r.header("connection"), Some("close"));
    }
    // b cannot read a's feed on it.
    let r = request(
        &mut s,
        n1,
        &format!("/feed/value.json?id={a_feed}&apikey={}", t.b.read),
    )
    .await
    .expect("reply");
    assert!(
        r.body.contains("false") || r.status >= 400,
        "b read a's feed: {} {}",
        r.status,
        r.body
    );
    // The connection is n2's now: a request for a (n1's) on it is answered as n2 answers any,
    // forwarded to n1, and the connection stays open.
    for _ in 0..2 {
        let r = request(&mut s, n1, &format!("/feed/list.json?apikey={}", t.a.read))
            .await
            .expect("reply");
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("secret"), "{}", r.body);
        assert_eq!(r.header("x-ynni-node"), Some("n1"));
        assert_ne!(r.header("connection"), Some("close"));
    }
    let r = request(&mut s, n1, &format!("/myip/get.json?apikey={}", t.b.read))
        .await
        .expect("reply");
    assert_eq!(r.header("x-ynni-node"), Some("n2"));
    drop(s);

    // The client's address travelled with the connection.
    let r = get(
        &c,
        &format!("{}/myip/get.json?apikey={}", t.n2.base, t.b.read),
    )
    .await;
    assert!(r.body.contains("\"127.0.0.2\""), "{}", r.body);
    // Every post is in: the input's last value is the 20th.
    let r = get(
        &c,
        &format!("{}/input/list.json?apikey={}", t.n2.base, t.b.read),
    )
    .await;
    let inputs: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    let power = inputs
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == "power"))
        .unwrap_or_else(|| panic!("no input: {}", r.body));
    assert_eq!(power["value"].as_f64(), Some(20.0), "{}", r.body);

    // Connections handed over at once travel together: five more of b's, open side by side,
    // add at most one connection between the nodes (none if n1 already shares one with n2).
    let before = connections_to(t.p2);
    let mut open = Vec::new();
    for k in 0..5 {
        let mut s = connect_from("127.0.0.3", n1).await;
        let r = request(
            &mut s,
            n1,
            &format!(
                "/input/post.json?node=together&fulljson=%7B%22k%22%3A{k}%7D&apikey={}",
                t.b.write
            ),
        )
        .await
        .expect("reply");
        assert_eq!((r.status, r.header("x-ynni-node")), (200, Some("n2")));
        open.push(s);
    }
    let after = connections_to(t.p2);
    assert!(
        after <= before + 1,
        "{before} connections to n2 before, {after} with five connections handed over"
    );
    drop(open);

    // A kept-alive connection whose first request is a's stays on n1 (no close asked).
    let mut s = connect_from("127.0.0.2", n1).await;
    let r = request(&mut s, n1, &format!("/feed/list.json?apikey={}", t.a.read))
        .await
        .expect("reply");
    assert_eq!(r.header("x-ynni-node"), Some("n1"));
    assert_ne!(r.header("connection"), Some("close"));

    // Posing as a node sharing its connection, or handing one over: without the secret,
    // closed with nothing sent back (no acknowledgement, no reply).
    for secret in ["guess".to_string(), String::new(), format!("{SECRET}x")] {
        let shared = format!(
            "YNNI-MUX/1 {}\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            hex(&secret)
        );
        let handed = format!(
            "YNNI-SPLICE/2 203.0.113.5:9 0 {}\r\nGET /myip/set.json?apikey={} HTTP/1.1\r\nHost: x\r\n\r\n",
            hex(&secret),
            t.b.write
        );
        for line in [shared, handed] {
            let mut s = TcpStream::connect(n2).await.expect("connect");
            s.write_all(line.as_bytes()).await.expect("write");
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
            assert!(
                answer.is_empty(),
                "answered {line:?} with {secret:?}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
    }
    let r = get(
        &c,
        &format!("{}/myip/get.json?apikey={}", t.n2.base, t.b.read),
    )
    .await;
    assert!(
        r.body.contains("\"127.0.0.2\""),
        "a forged address was taken: {}",
        r.body
    );
    // With the secret (what n1 sends), the address is believed.
    let mut s = TcpStream::connect(n2).await.expect("connect");
    let line = format!(
        "YNNI-SPLICE/2 203.0.113.5:9 0 {}\r\nGET /myip/set.json?apikey={} HTTP/1.1\r\nHost: x\r\n\r\n",
        hex(SECRET),
        t.b.write
    );
    s.write_all(line.as_bytes()).await.expect("write");
    // The owner acknowledges the preamble before it answers the request.
    let mut ack = [0u8; 18];
    s.read_exact(&mut ack).await.expect("acknowledgement");
    assert_eq!(&ack, b"YNNI-SPLICE/2 OK\r\n");
    let r = read_reply(&mut s).await.expect("reply");
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    let r = get(
        &c,
        &format!("{}/myip/get.json?apikey={}", t.n2.base, t.b.read),
    )
    .await;
    assert!(r.body.contains("\"203.0.113.5\""), "{}", r.body);

    // A connection handed to n2 for b, then b's vshard moves to n1 (a drain): n2 answers b's
    // next request on it by forwarding (or 503 while the move is under way) and asks the
    // client to reconnect; the new connection is served by n1 itself.
    let mut s = connect_from("127.0.0.2", n1).await;
    let r = request(&mut s, n1, &format!("/feed/list.json?apikey={}", t.b.read))
        .await
        .expect("reply");
    assert_eq!(r.header("x-ynni-node"), Some("n2"));
    let (ok, out, err) = crate::harness::run_cli(
        &[
            "cluster",
            "drain",
            "n2",
            "--config",
            t.c1.to_str().expect("path"),
        ],
        &[],
        None,
    );
    assert!(ok.success(), "{out}{err}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while shares(&t.pool).await.get("n1") != Some(&256) {
        assert!(
            std::time::Instant::now() < deadline,
            "the drain never finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = request(&mut s, n1, &format!("/feed/list.json?apikey={}", t.b.read))
        .await
        .expect("reply");
    assert!(
        r.status == 200 || r.status == 503,
        "{} {}",
        r.status,
        r.body
    );
    assert_eq!(r.header("connection"), Some("close"));
    assert!(closed(&mut s).await, "the connection stayed open");
    let (status, _) = retrying(&format!("{}/feed/list.json?apikey={}", t.n1.base, t.b.read)).await;
    assert_eq!(status, 200);
    let mut s = connect_from("127.0.0.2", n1).await;
    let r = request(&mut s, n1, &format!("/feed/list.json?apikey={}", t.b.read))
        .await
        .expect("reply");
    assert_eq!((r.status, r.header("x-ynni-node")), (200, Some("n1")));
    stop_cleanly([t.n1, t.n2]);
}

/// Established TCP connections to `port` on loopback, counted at their connecting end.
fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(2) == Some(&remote.as_str()) && f.get(3) == Some(&"01")
        })
        .count()
}

/// Reads what the connection has next onto `rest`; 0 when it closed.
async fn more(s: &mut TcpStream, rest: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 4096];
    let n = s.read(&mut chunk).await.unwrap_or(0);
    rest.extend_from_slice(&chunk[..n]);
    n
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}
