//! Registration, `user/auth`, and account rules over HTTP.

use serde_json::json;

use crate::harness::*;

fn is_key(v: &serde_json::Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[tokio::test]
async fn register_returns_emoncms_reply_and_first_user_is_admin() {
    let server = Server::start();
    let r = post_form(
        &script(),
        &server.url("/user/register.json"),
        &[
            ("username", "alice"),
            ("password", "secret1"),
            ("email", "alice@example.com"),
            ("timezone", "Europe/London"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "application/json");
    let v = r.json();
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "success",
            "verifyemail",
            "userid",
            "apikey_read",
            "apikey_write"
        ]
    );
    assert_eq!(v["success"], true);
    assert_eq!(v["verifyemail"], false);
    assert_eq!(v["userid"], 1);
    assert!(
        is_key(&v["apikey_read"]) && is_key(&v["apikey_write"]),
        "{v}"
    );
    assert_ne!(v["apikey_read"], v["apikey_write"]);

    let (bob, _, _) = register(&server, "bob", "secret2").await;
    assert_eq!(bob, 2);

    let (status, out, err) = run_cli(
        &[
            "user",
            "list",
            "--data-dir",
            server.data_dir.to_str().expect("utf8"),
        ],
        &[],
        None,
    );
    assert!(status.success(), "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(list[0]["username"], "alice");
    assert_eq!(list[0]["admin"], true);
    assert_eq!(list[0]["timezone"], "Europe/London");
    assert_eq!(list[1]["username"], "bob");
    assert_eq!(list[1]["admin"], false);
    assert!(
        list[0].get("apikey_write").is_none(),
        "keys only with --with-keys"
    );
}

#[tokio::test]
async fn register_validation_uses_emoncms_messages() {
    let server = Server::start();
    register(&server, "taken", "secret1").await;
    let long = "a".repeat(31);
    let long_pw = "p".repeat(251);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("username", "x1y"), ("password", "secret")],
            "Missing username, password or email parameter",
        ),
        (
            vec![
                ("username", ""),
                ("password", "secret"),
                ("email", "a@example.com"),
            ],
            "Missing username, password or email parameter",
        ),
        (
            vec![
                ("username", "élodie"),
                ("password", "secret"),
                ("email", "a@example.com"),
            ],
            "Username must only contain a-z and 0-9 characters",
        ),
        (
            vec![
                ("username", "ab"),
                ("password", "secret"),
                ("email", "a@example.com"),
            ],
            "Username must be at least 3 characters",
        ),
        (
            vec![
                ("username", &long),
                ("password", "secret"),
                ("email", "a@example.com"),
            ],
            "Username must be less than 30 characters",
        ),
        (
            vec![
                ("username", "a' OR '1'='1"),
                ("password", "secret"),
                ("email", "a@example.com"),
            ],
            "Username must only contain a-z and 0-9 characters",
        ),
        (
            vec![
                ("username", "Robert'); DROP TABLE users;--"),
                ("password", "secret"),
                ("email", "a@example.com"),
            ],
            "Username must only contain a-z and 0-9 characters",
        ),
        (
            vec![
                ("username", "TAKEN"),
                ("password", "secret"),
                ("email", "a@example.com"),
            ],
            "Username already exists",
        ),
        (
            vec![
                ("username", "carol"),
                ("password", "secret"),
                ("email", "not-an-email"),
            ],
            "Email address format error",
        ),
        (
            vec![
                ("username", "carol"),
                ("password", "abc"),
                ("email", "c@example.com"),
            ],
            "Password must be at least 4 characters",
        ),
        (
            vec![
                ("username", "carol"),
                ("password", &long_pw),
                ("email", "c@example.com"),
            ],
            "Password must be less than 250 characters",
        ),
    ];
    for (form, message) in cases {
        let r = post_form(&script(), &server.url("/user/register.json"), &form).await;
        assert_eq!(r.status, 200, "{form:?}");
        assert_eq!(
            r.json(),
            json!({"success": false, "message": message}),
            "{form:?}"
        );
    }
    // Nothing above created an account, and the users table is intact.
    let (_, out, _) = run_cli(
        &[
            "user",
            "list",
            "--data-dir",
            server.data_dir.to_str().expect("utf8"),
        ],
        &[],
        None,
    );
    let list: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn malformed_and_non_form_bodies_get_a_clear_error() {
    let server = Server::start();
    let url = server.url("/user/register.json");
    for (ctype, body) in [
        ("application/x-www-form-urlencoded", "%%%zz&&=&username"),
        (
            "application/json",
            r#"{"username":"alice","password":"secret","email":"a@example.com"}"#,
        ),
        (
            "application/x-www-form-urlencoded",
            "username=%ff%fe&password=secret&email=a%40example.com",
        ),
    ] {
        let r = send(script().post(&url).header("content-type", ctype).body(body)).await;
        assert_eq!(r.status, 200, "{body}");
        assert_eq!(r.json()["success"], false, "{body}: {}", r.body);
    }
    // The server still serves.
    register(&server, "alice", "secret1").await;
}

#[tokio::test]
async fn registration_modes() {
    let first = Server::builder()
        .env("USERS__REGISTRATION", "first-user")
        .start();
    register(&first, "alice", "secret1").await;
    let r = post_form(
        &script(),
        &first.url("/user/register.json"),
        &[
            ("username", "bob"),
            ("password", "secret1"),
            ("email", "bob@example.com"),
        ],
    )
    .await;
    assert_eq!(r.body, "false");

    let closed = Server::builder()
        .env("USERS__REGISTRATION", "closed")
        .start();
    let r = post_form(
        &script(),
        &closed.url("/user/register.json"),
        &[
            ("username", "alice"),
            ("password", "secret1"),
            ("email", "a@example.com"),
        ],
    )
    .await;
    assert_eq!(r.body, "false");
}

#[tokio::test]
async fn auth_returns_keys_for_username_and_password() {
    let server = Server::start();
    let (id, read, write) = register(&server, "alice", "secret1").await;
    let url = server.url("/user/auth.json");
    let r = post_form(
        &script(),
        &url,
        &[("username", "alice"), ("password", "secret1")],
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"success": true, "userid": id, "apikey_write": write, "apikey_read": read})
    );
    for form in [
        [("username", "alice"), ("password", "wrong")],
        [("username", "nobody"), ("password", "secret1")],
    ] {
        let r = post_form(&script(), &url, &form).await;
        assert_eq!(
            r.json(),
            json!({"success": false, "message": "Incorrect authentication"})
        );
    }
    let r = post_form(&script(), &url, &[("username", "alice")]).await;
    assert_eq!(
        r.json(),
        json!({"success": false, "message": "Username or password empty"})
    );
}

#[tokio::test]
async fn login_attempts_are_rate_limited() {
    let server = Server::builder()
        .env("LIMITS__LOGIN_ATTEMPTS", "3")
        .env("LIMITS__REGISTER_ATTEMPTS", "2")
        .start();
    register(&server, "alice", "secret1").await;
    let url = server.url("/user/login.json");
    for _ in 0..3 {
        let r = post_form(
            &script(),
            &url,
            &[("username", "alice"), ("password", "wrong")],
        )
        .await;
        assert_eq!(r.json()["message"], "Incorrect username or password");
    }
    // Even the right password is refused now.
    let r = post_form(
        &script(),
        &url,
        &[("username", "alice"), ("password", "secret1")],
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"success": false, "message": "Too many attempts, please try again later"})
    );

    // Registration counts every attempt: the first succeeded above, one more is allowed.
    let form = [
        ("username", "bob"),
        ("password", "secret1"),
        ("email", "bob@example.com"),
    ];
    let r = post_form(&script(), &server.url("/user/register.json"), &form).await;
    assert_eq!(r.json()["success"], true);
    let form = [
        ("username", "carol"),
        ("password", "secret1"),
        ("email", "c@example.com"),
    ];
    let r = post_form(&script(), &server.url("/user/register.json"), &form).await;
    assert_eq!(
        r.json()["message"],
        "Too many attempts, please try again later"
    );
}

#[tokio::test]
async fn login_limits_count_per_address_and_per_username() {
    let server = Server::builder().env("LIMITS__LOGIN_ATTEMPTS", "2").start();
    register(&server, "alice", "secret1").await;
    register(&server, "bob", "secret1").await;
    let url = server.url("/user/login.json");
    let from = |last: u8| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, last]))
            .build()
            .expect("client")
    };
    let (a, b, c) = (from(2), from(3), from(4));
    // Two failures for alice from one address block that address ...
    for _ in 0..2 {
        let r = post_form(&a, &url, &[("username", "alice"), ("password", "wrong")]).await;
        assert_eq!(r.json()["message"], "Incorrect username or password");
    }
    let r = post_form(&a, &url, &[("username", "bob"), ("password", "secret1")]).await;
    assert_eq!(
        r.json()["message"],
        "Too many attempts, please try again later"
    );
    // ... and alice's username from every address, while bob can still log in elsewhere.
    let r = post_form(&b, &url, &[("username", "alice"), ("password", "secret1")]).await;
    assert_eq!(
        r.json()["message"],
        "Too many attempts, please try again later"
    );
    let r = post_form(&c, &url, &[("username", "bob"), ("password", "secret1")]).await;
    assert_eq!(r.json()["success"], true);
    // Successful logins do not use up the allowance.
    for _ in 0..3 {
        let r = post_form(
            &from(5),
            &url,
            &[("username", "bob"), ("password", "secret1")],
        )
        .await;
        assert_eq!(r.json()["success"], true);
    }
}

#[tokio::test]
async fn auth_and_password_change_are_rate_limited() {
    let server = Server::builder()
        .env("LIMITS__LOGIN_ATTEMPTS", "2")
        .env("LIMITS__PASSWORD_CHANGE_ATTEMPTS", "1")
        .start();
    register(&server, "alice", "secret1").await;
    let url = server.url("/user/auth.json");
    for _ in 0..2 {
        let r = post_form(
            &script(),
            &url,
            &[("username", "alice"), ("password", "secret1")],
        )
        .await;
        assert_eq!(r.json()["success"], true);
    }
    // emoncms counts every auth call from an address, successful ones included.
    let r = post_form(
        &script(),
        &url,
        &[("username", "alice"), ("password", "secret1")],
    )
    .await;
    assert_eq!(
        r.json()["message"],
        "Too many attempts, please try again later"
    );

    let b = browser();
    post_form(
        &b,
        &server.url("/user/login.json"),
        &[("username", "alice"), ("password", "secret1")],
    )
    .await;
    let change = server.url("/user/changepassword.json");
    let r = post_form(&b, &change, &[("old", "wrong1"), ("new", "secret2")]).await;
    assert_eq!(r.json()["message"], "Old password incorect");
    let r = post_form(&b, &change, &[("old", "secret1"), ("new", "secret2")]).await;
    assert_eq!(
        r.json()["message"],
        "Too many attempts, please try again later"
    );
}

#[tokio::test]
async fn register_details() {
    let server = Server::start();
    // An unknown time zone is stored as UTC, as emoncms does.
    let form = [
        ("username", "alice"),
        ("password", "secret1"),
        ("email", "a@example.com"),
        ("timezone", "US/Eastern"),
    ];
    let r = post_form(&script(), &server.url("/user/register.json"), &form).await;
    let read = r.json()["apikey_read"].as_str().expect("key").to_string();
    let tz = get(
        &script(),
        &server.url(&format!("/user/gettimezone.json?apikey={read}")),
    )
    .await;
    assert_eq!(tz.json(), json!("UTC"));

    // multipart/form-data (curl -F) fills the form as urlencoded bodies do.
    let form = reqwest::multipart::Form::new()
        .text("username", "bob")
        .text("password", "secret1")
        .text("email", "bob@example.com");
    let r = send(
        script()
            .post(server.url("/user/register.json"))
            .multipart(form),
    )
    .await;
    assert_eq!(r.json()["userid"], 2, "{}", r.body);

    let zones = get(&script(), &server.url("/user/gettimezones.json"))
        .await
        .json();
    let zones = zones.as_array().expect("array");
    let london = zones
        .iter()
        .find(|z| z["id"] == "Europe/London")
        .expect("Europe/London listed");
    let secs = london["gmt_offset_secs"].as_i64().expect("secs");
    assert!(secs == 0 || secs == 3600, "{london}");
    let text = if secs == 0 {
        "GMT +00:00"
    } else {
        "GMT +01:00"
    };
    assert_eq!(london["gmt_offset_text"], text);
    let kolkata = zones
        .iter()
        .find(|z| z["id"] == "Asia/Kolkata")
        .expect("listed");
    assert_eq!(kolkata["gmt_offset_text"], "GMT +05:30");
    assert!(zones.iter().all(|z| z["id"] != "US/Eastern"));
}
