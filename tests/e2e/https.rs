//! HTTPS beside HTTP: a client trusting the certificate is served (with HSTS and `Secure`
//! session cookies), one that does not is refused, and a renewed certificate is taken up on
//! SIGHUP without dropping an open connection, by the MQTTS listener too.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

use crate::harness::*;

/// A TLS connection to `port` on localhost trusting only the certificate in `ca` (or
/// nothing at all).
async fn connect(port: u16, ca: Option<&Path>) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        let pem = std::fs::read(ca)?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert?).map_err(std::io::Error::other)?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let name =
        rustls::pki_types::ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// One HTTP/1.1 exchange on a kept-alive connection: (status, lower-cased headers, body).
async fn exchange(
    s: &mut TlsStream<TcpStream>,
    method: &str,
    path: &str,
    form: Option<&str>,
) -> (u16, String, String) {
    let body = form.unwrap_or("");
    let extra = if form.is_some() {
        format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        )
    } else {
        String::new()
    };
    let req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n{body}");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, mut rest) = loop {
        let n = s.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed before the reply");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break (
                String::from_utf8_lossy(&buf[..i]).to_lowercase(),
                buf[i + 4..].to_vec(),
            );
        }
    };
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a content-length");
    while rest.len() < length {
        let n = s.read(&mut chunk).await.expect("read body");
        assert!(n > 0, "connection closed inside the body");
        rest.extend_from_slice(&chunk[..n]);
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    (status, head, String::from_utf8_lossy(&rest).into_owned())
}

fn selfsigned(data: &Path, force: bool) -> std::path::PathBuf {
    let data_s = data.to_str().expect("utf-8 path");
    let mut args = vec![
        "tls",
        "selfsigned",
        "--data-dir",
        data_s,
        "--name",
        "localhost",
    ];
    if force {
        args.push("--force");
    }
    let (status, out, err) = run_cli(&args, &[], None);
    assert!(status.success(), "{out}{err}");
    let paths: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    paths["cert"].as_str().expect("cert path").into()
}

async fn log_soon(server: &Server, text: &str) {
    for _ in 0..100 {
        if server.log().contains(text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {text:?} in the log: {}", server.log());
}

#[tokio::test]
async fn https_serves_trusting_clients_and_reloads_its_certificate_on_sighup() {
    let keep = tempfile::tempdir().expect("tempdir");
    let data = keep.path().join("data");
    let cert = selfsigned(&data, false);
    let first = keep.path().join("first.pem");
    std::fs::copy(&cert, &first).expect("copy");

    let server = Server::builder()
        .data_dir(&data)
        .env("HTTP__TLS_LISTEN", "127.0.0.1:0")
        .env("MQTT__TLS_LISTEN", "127.0.0.1:0")
        .start();
    let port = server
        .log()
        .split("HTTPS listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .expect("the HTTPS listener's address in the log")
        .port();
    let mqtts = server
        .log()
        .split("MQTT TLS listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .expect("the MQTTS listener's address in the log")
        .port();
    assert!(
        connect(mqtts, Some(&first)).await.is_ok(),
        "MQTTS, first pair"
    );
    register(&server, "alice", "secret123").await;

    // Plain HTTP is still served, without HSTS and with a cookie that is not `Secure`.
    let plain = script();
    let r = get(&plain, &server.url("/version")).await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("strict-transport-security").is_none());
    let r = post_form(
        &plain,
        &server.url("/user/login.json"),
        &[("username", "alice"), ("password", "secret123")],
    )
    .await;
    let cookie = r
        .headers
        .get("set-cookie")
        .expect("cookie")
        .to_str()
        .expect("ascii");
    assert!(!cookie.contains("Secure"), "{cookie}");

    // A client that does not trust the certificate is refused at the handshake.
    assert!(connect(port, None).await.is_err());

    let mut kept = connect(port, Some(&first)).await.expect("handshake");
    let (status, head, body) = exchange(&mut kept, "GET", "/version", None).await;
    assert_eq!((status, body.as_str()), (200, "11.16.8"));
    assert!(
        head.contains("strict-transport-security: max-age=31536000"),
        "{head}"
    );
    let (status, head, body) = exchange(
        &mut kept,
        "POST",
        "/user/login.json",
        Some("username=alice&password=secret123"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let cookie = head
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .expect("a session cookie");
    assert!(cookie.contains("secure"), "{cookie}");

    // Renewal: a new pair, then SIGHUP. The open connection carries on; new ones get the
    // new certificate.
    let cert = selfsigned(&data, true);
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(hup.success());
    log_soon(&server, "HTTPS certificate reloaded").await;
    log_soon(&server, "MQTTS certificate reloaded").await;
    assert!(
        connect(mqtts, Some(&first)).await.is_err(),
        "MQTTS serves the renewed pair"
    );
    assert!(
        connect(mqtts, Some(&cert)).await.is_ok(),
        "MQTTS, renewed pair"
    );
    let (status, _, body) = exchange(&mut kept, "GET", "/version", None).await;
    assert_eq!((status, body.as_str()), (200, "11.16.8"));
    assert!(connect(port, Some(&first)).await.is_err());
    let mut renewed = connect(port, Some(&cert))
        .await
        .expect("handshake, new pair");
    assert_eq!(exchange(&mut renewed, "GET", "/version", None).await.0, 200);

    // A broken file is refused at reload and the pair in service stays.
    let second = keep.path().join("second.pem");
    std::fs::copy(&cert, &second).expect("copy");
    std::fs::write(&cert, "not a certificate").expect("write");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(hup.success());
    log_soon(&server, "HTTPS certificate not reloaded").await;
    let mut again = connect(port, Some(&second))
        .await
        .expect("handshake after a bad reload");
    assert_eq!(exchange(&mut again, "GET", "/version", None).await.0, 200);
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}
