//! Browser sessions, apikey callers, key regeneration and password changes.

use serde_json::json;

use crate::harness::*;

const INTERACTIVE_ONLY: &str =
    "This action requires an interactive login and cannot be performed with an API key";

async fn login(server: &Server, client: &reqwest::Client, user: &str, pass: &str) -> Reply {
    post_form(
        client,
        &server.url("/user/login.json"),
        &[("username", user), ("password", pass)],
    )
    .await
}

#[tokio::test]
async fn browser_login_profile_and_logout() {
    let server = Server::start();
    let (id, read, write) = register(&server, "alice", "secret1").await;
    let b = browser();

    // Without a session the account endpoints answer `false`.
    assert_eq!(
        get(&b, &server.url("/user/session.json")).await.body,
        "false"
    );
    assert_eq!(get(&b, &server.url("/user/get.json")).await.body, "false");

    let r = login(&server, &b, "alice", "secret1").await;
    assert_eq!(
        r.json(),
        json!({"success": true, "message": "Login successful", "startingpage": "feed/list"})
    );
    let cookie = r
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        cookie.starts_with("EMONCMS_SESSID=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    assert_eq!(
        get(&b, &server.url("/user/session.json")).await.json(),
        json!({"userid": id, "type": "write", "admin": true}),
        "the first account is the administrator"
    );
    // Logged in already: login is not offered again.
    assert_eq!(login(&server, &b, "alice", "secret1").await.body, "false");

    let user = get(&b, &server.url("/user/get.json")).await.json();
    assert_eq!(user["id"], json!(id.to_string()));
    assert_eq!(user["username"], "alice");
    assert_eq!(user["apikey_read"], json!(read));
    assert_eq!(user["apikey_write"], json!(write));

    let data = r#"{"name":"Alice <b>Jones</b>","location":"Aberystwyth","timezone":"America/New_York","bio":"solar","language":"cy_GB"}"#;
    let r = post_form(&b, &server.url("/user/set.json"), &[("data", data)]).await;
    assert_eq!(
        r.json(),
        json!({"success": true, "message": "User info updated"})
    );
    let user = get(&b, &server.url("/user/get.json")).await.json();
    assert_eq!(user["name"], "Alice bJonesb");
    assert_eq!(user["timezone"], "America/New_York");
    assert_eq!(user["language"], "cy_GB");
    assert_eq!(
        get(&b, &server.url("/user/gettimezone.json")).await.json(),
        json!("America/New_York")
    );
    let offset = get(&b, &server.url("/user/timezone.json")).await.json();
    assert!(
        offset == json!(-18000) || offset == json!(-14400),
        "{offset}"
    );

    let r = post_form(&b, &server.url("/user/set.json"), &[("data", "not json")]).await;
    assert_eq!(
        r.json(),
        json!({"success": false, "message": "Error updating user info"})
    );

    let r = get(&b, &server.url("/user/logout.json")).await;
    assert_eq!(r.body, "false");
    assert_eq!(
        get(&b, &server.url("/user/session.json")).await.body,
        "false"
    );
}

#[tokio::test]
async fn login_errors() {
    let server = Server::start();
    register(&server, "alice", "secret1").await;
    let c = script();
    for (u, p, msg) in [
        ("alice", "wrong", "Incorrect username or password"),
        ("nobody", "secret1", "Incorrect username or password"),
        ("alice", "", "Username or password empty"),
        ("al", "secret1", "Username must be at least 3 characters"),
        (
            "al!ce",
            "secret1",
            "Username must only contain a-z and 0-9 characters",
        ),
    ] {
        assert_eq!(
            login(&server, &c, u, p).await.json(),
            json!({"success": false, "message": msg}),
            "{u}/{p}"
        );
    }
    // Usernames match regardless of case, as in emoncms.
    assert_eq!(
        login(&server, &c, "ALICE", "secret1").await.json()["success"],
        true
    );
}

#[tokio::test]
async fn apikey_callers() {
    let server = Server::start();
    let (id, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let session = |key: &str| server.url(&format!("/user/session.json?apikey={key}"));
    assert_eq!(
        get(&c, &session(&read)).await.json(),
        json!({"userid": id, "type": "read"})
    );
    assert_eq!(
        get(&c, &session(&write)).await.json(),
        json!({"userid": id, "type": "write"})
    );
    // Key in a form body, and as a bearer token.
    let r = post_form(&c, &server.url("/user/session.json"), &[("apikey", &write)]).await;
    assert_eq!(r.json()["type"], "write");
    let r = send(
        c.get(server.url("/user/session.json"))
            .header("Authorization", format!("Bearer {read}")),
    )
    .await;
    assert_eq!(r.json()["type"], "read");

    for action in ["get", "set", "newapikeywrite", "changepassword", "logout"] {
        let r = get(
            &c,
            &server.url(&format!("/user/{action}.json?apikey={write}")),
        )
        .await;
        assert_eq!(
            r.json(),
            json!({"success": false, "message": INTERACTIVE_ONLY}),
            "{action}"
        );
    }

    // getuuid is stable and keyed per account.
    let u1 = get(
        &c,
        &server.url(&format!("/user/getuuid.json?apikey={read}")),
    )
    .await;
    assert_eq!(u1.content_type, "application/json");
    let u1 = u1.json();
    assert_eq!(u1["success"], true);
    assert_eq!(u1["message"].as_str().map(str::len), Some(36));
    let u2 = get(
        &c,
        &server.url(&format!("/user/getuuid.json?apikey={write}")),
    )
    .await
    .json();
    assert_eq!(u1, u2);

    // Bad keys: wrong shape, unknown, and SQL in the key are all plain 401s.
    for bad in [
        "0123456789abcdef0123456789abcdef",
        "short",
        "'%20OR%201=1--",
    ] {
        let r = get(&c, &server.url(&format!("/user/session.json?apikey={bad}"))).await;
        assert_eq!(r.status, 401, "{bad}");
        assert_eq!(r.body, "Invalid API key");
        let www = r
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            www.starts_with("Bearer realm=\"API KEY\", error=\"invalid_apikey\""),
            "{www}"
        );
    }
}

#[tokio::test]
async fn regenerated_keys_stop_working_at_once() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let b = browser();
    login(&server, &b, "alice", "secret1").await;
    let c = script();
    let session = |key: &str| server.url(&format!("/user/session.json?apikey={key}"));
    assert_eq!(get(&c, &session(&write)).await.status, 200);

    let v = get(&b, &server.url("/user/newapikeywrite.json"))
        .await
        .json();
    assert_eq!(v["success"], true);
    let new_write = v["write_apikey"].as_str().expect("key").to_string();
    assert_ne!(new_write, write);
    assert_eq!(get(&c, &session(&write)).await.status, 401);
    assert_eq!(get(&c, &session(&new_write)).await.json()["type"], "write");

    let v = get(&b, &server.url("/user/newapikeyread.json"))
        .await
        .json();
    let new_read = v["read_apikey"].as_str().expect("key").to_string();
    assert_eq!(get(&c, &session(&read)).await.status, 401);
    assert_eq!(get(&c, &session(&new_read)).await.json()["type"], "read");

    let user = get(&b, &server.url("/user/get.json")).await.json();
    assert_eq!(user["apikey_write"], json!(new_write));
    assert_eq!(user["apikey_read"], json!(new_read));
}

#[tokio::test]
async fn password_change_ends_other_sessions() {
    let server = Server::start();
    register(&server, "alice", "secret1").await;
    let (a, b) = (browser(), browser());
    login(&server, &a, "alice", "secret1").await;
    login(&server, &b, "alice", "secret1").await;
    let url = server.url("/user/changepassword.json");

    let r = post_form(&a, &url, &[("old", "wrong1"), ("new", "secret2")]).await;
    assert_eq!(
        r.json(),
        json!({"success": false, "message": "Old password incorect"})
    );
    let r = post_form(&a, &url, &[("old", "secret1"), ("new", "abc")]).await;
    assert_eq!(
        r.json(),
        json!({"success": false, "message": "Password must be at least 4 characters"})
    );
    let r = post_form(&a, &url, &[("old", "secret1"), ("new", "secret2")]).await;
    assert_eq!(
        r.json(),
        json!({"success": true, "message": "Password updated successfully"})
    );

    assert_eq!(
        get(&a, &server.url("/user/session.json")).await.json()["type"],
        "write"
    );
    assert_eq!(
        get(&b, &server.url("/user/session.json")).await.body,
        "false"
    );
    assert_eq!(
        login(&server, &script(), "alice", "secret1").await.json()["success"],
        false
    );
    assert_eq!(
        login(&server, &script(), "alice", "secret2").await.json()["success"],
        true
    );
}

#[tokio::test]
async fn change_username_and_email() {
    let server = Server::start();
    register(&server, "alice", "secret1").await;
    register(&server, "bob", "secret1").await;
    let b = browser();
    login(&server, &b, "alice", "secret1").await;
    let r = get(&b, &server.url("/user/changeusername.json?username=bob")).await;
    assert_eq!(
        r.json(),
        json!({"success": false, "message": "Username already exists"})
    );
    let r = get(&b, &server.url("/user/changeusername.json?username=alys")).await;
    assert_eq!(
        r.json(),
        json!({"success": true, "message": "Username updated"})
    );
    let r = get(&b, &server.url("/user/changeemail.json?email=bad")).await;
    assert_eq!(
        r.json(),
        json!({"success": false, "message": "Email address format error"})
    );
    let r = get(
        &b,
        &server.url("/user/changeemail.json?email=alys%40example.org"),
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"success": true, "message": "Email updated"})
    );
    let user = get(&b, &server.url("/user/get.json")).await.json();
    assert_eq!(
        (user["username"].clone(), user["email"].clone()),
        (json!("alys"), json!("alys@example.org"))
    );
    assert_eq!(
        login(&server, &script(), "alys", "secret1").await.json()["success"],
        true
    );
}

#[tokio::test]
async fn legacy_emoncms_password_is_accepted_and_upgraded() {
    let server = Server::start();
    let (id, _, _) = register(&server, "alice", "placeholder").await;
    // Put an emoncms-style hash in place, as an import from emoncms would.
    let salt = "00112233445566778899aabbccddeeff";
    let legacy = ynni_core::password::legacy_hash("oldpass", salt);
    let db = server.data_dir.join("catalog.sqlite");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("open catalog");
    sqlx::query("UPDATE users SET password = ?, salt = ? WHERE id = ?")
        .bind(&legacy)
        .bind(salt)
        .bind(id)
        .execute(&pool)
        .await
        .expect("update");

    assert_eq!(
        login(&server, &script(), "alice", "wrong").await.json()["success"],
        false
    );
    assert_eq!(
        login(&server, &script(), "alice", "oldpass").await.json()["success"],
        true
    );
    let (hash, salt): (String, Option<String>) =
        sqlx::query_as("SELECT password, salt FROM users WHERE id = ?")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("row");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert_eq!(salt, None);
    pool.close().await;
    assert_eq!(
        login(&server, &script(), "alice", "oldpass").await.json()["success"],
        true
    );
}

#[tokio::test]
async fn remember_me_referrer_and_unbuilt_actions() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let url = server.url("/user/login.json");
    let r = post_form(&c, &url, &[("username", "alice"), ("password", "secret1")]).await;
    let cookie = r.headers["set-cookie"].to_str().expect("ascii").to_string();
    assert!(
        !cookie.contains("Max-Age"),
        "a session cookie without rememberme: {cookie}"
    );
    let form = [
        ("username", "alice"),
        ("password", "secret1"),
        ("rememberme", "1"),
        ("referrer", "graph/3"),
    ];
    let r = post_form(&c, &url, &form).await;
    assert_eq!(r.json()["startingpage"], "graph/3");
    let cookie = r.headers["set-cookie"].to_str().expect("ascii").to_string();
    assert!(cookie.contains("Max-Age=2592000"), "{cookie}");
    // An off-site referrer is ignored.
    let form = [
        ("username", "alice"),
        ("password", "secret1"),
        ("referrer", "https://evil.example/"),
    ];
    assert_eq!(
        post_form(&c, &url, &form).await.json()["startingpage"],
        "feed/list"
    );

    // login and auth with a key are interactive-only, as in emoncms.
    for action in ["login", "auth"] {
        let r = post_form(
            &c,
            &server.url(&format!("/user/{action}.json?apikey={read}")),
            &[("username", "alice"), ("password", "secret1")],
        )
        .await;
        assert_eq!(
            r.json(),
            json!({"success": false, "message": INTERACTIVE_ONLY}),
            "{action}"
        );
    }

    let b = browser();
    login(&server, &b, "alice", "secret1").await;
    let r = post_form(
        &b,
        &server.url("/user/deleteall.json"),
        &[("mode", "permanentdelete"), ("password", "secret1")],
    )
    .await;
    assert_eq!(r.status, 501);
    assert_eq!(
        r.json(),
        json!({"success": false, "message": "Not implemented in ynni yet: user/deleteall"})
    );
    let r = post_form(
        &script(),
        &server.url("/user/passwordreset.json"),
        &[("username", "alice")],
    )
    .await;
    assert_eq!(r.status, 501);
    // The account is untouched.
    assert_eq!(
        get(
            &c,
            &server.url(&format!("/user/session.json?apikey={write}"))
        )
        .await
        .json()["type"],
        "write"
    );
}

#[tokio::test]
async fn a_devicekey_never_opens_an_account_session() {
    let server = Server::start();
    let (_, _, write) = register(&server, "alice", "secret1").await;
    let r = get(
        &script(),
        &server.url(&format!("/user/session.json?devicekey={write}")),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (401, "Invalid API key"));
}

#[tokio::test]
async fn renaming_to_your_own_name_is_refused_as_emoncms_does() {
    let server = Server::start();
    register(&server, "alice", "secret1").await;
    let b = browser();
    login(&server, &b, "alice", "secret1").await;
    for name in ["alice", "ALICE"] {
        let r = get(
            &b,
            &server.url(&format!("/user/changeusername.json?username={name}")),
        )
        .await;
        assert_eq!(
            r.json(),
            json!({"success": false, "message": "Username already exists"})
        );
    }
}
