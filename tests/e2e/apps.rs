//! emoncms's app module API (issue 19) and share links: apps belong to their user (a public
//! one may be read by id), and a share token reads only the feeds it shares, through nothing
//! but the data calls, and stops at once when revoked.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Server, get, register, script};

async fn call(server: &Server, path: &str) -> (u16, String) {
    let r = get(&script(), &server.url(path)).await;
    (r.status, r.body)
}

async fn json_at(server: &Server, path: &str) -> Value {
    let (status, body) = call(server, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}"))
}

async fn feed(server: &Server, key: &str, name: &str) -> i64 {
    json_at(
        server,
        &format!(
            "/feed/create.json?name={name}&engine=5&options=%7B%22interval%22%3A10%7D&apikey={key}"
        ),
    )
    .await["feedid"]
        .as_i64()
        .expect("feedid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_stay_with_their_user_and_share_links_read_only_what_they_share() {
    let server = Server::start();
    let (alice, alice_read, alice_write) = register(&server, "alice", "password123").await;
    let (_, bob_read, bob_write) = register(&server, "bobby", "password123").await;
    let use_feed = feed(&server, &alice_write, "use").await;
    let kwh_feed = feed(&server, &alice_write, "use_kwh").await;
    let secret = feed(&server, &alice_write, "secret").await;
    for (id, t) in [(use_feed, 1_700_000_000), (secret, 1_700_000_000)] {
        let (status, body) = call(
            &server,
            &format!("/feed/insert.json?id={id}&time={t}&value=5&apikey={alice_write}"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    // The app module's API, with emoncms's answers.
    let add = |app: &str, name: &str, key: &str| {
        format!("/app/add.json?app={app}&name={name}&apikey={key}")
    };
    let created = json_at(&server, &add("myelectric", "House", &alice_write)).await;
    assert_eq!(created["success"], true, "{created}");
    let app = created["id"].as_i64().expect("id");
    assert_eq!(
        json_at(&server, &add("myelectric", "House", &alice_write)).await,
        json!({"success": false, "message": "App already exist with name House"})
    );
    assert_eq!(
        json_at(&server, &add("nosuchapp", "X", &alice_write)).await,
        json!("Invalid app")
    );
    assert_eq!(
        json_at(&server, &add("myelectric", "a%3Cb", &alice_write)).await,
        json!({"success": false, "message": "Invalid app name"})
    );
    let config = format!(
        "%7B%22use%22%3A%22{use_feed}%22%2C%22use_kwh%22%3A{kwh_feed}%2C%22unitcost%22%3A0.15%7D"
    );
    let r = json_at(
        &server,
        &format!("/app/setconfig.json?id={app}&config={config}&apikey={alice_write}"),
    )
    .await;
    assert_eq!(r, json!({"success": true}));
    let row = json_at(
        &server,
        &format!("/app/getconfig.json?name=House&apikey={alice_read}"),
    )
    .await;
    assert_eq!(
        row,
        json!({"id": app.to_string(), "userid": alice.to_string(), "app": "myelectric",
               "name": "House", "public": "0",
               "config": {"use": use_feed.to_string(), "use_kwh": kwh_feed, "unitcost": 0.15}})
    );
    assert_eq!(
        json_at(&server, &format!("/app/list.json?apikey={alice_read}")).await,
        json!([{"id": app.to_string(), "app": "myelectric", "name": "House", "public": "0"}])
    );
    assert!(
        json_at(&server, &format!("/app/available.json?apikey={alice_read}"))
            .await
            .get("myheatpump")
            .is_some()
    );

    // Bob can neither read nor change alice's app while it is private; a public one he may
    // read by id (as in emoncms), still not change.
    let invalid = json!({"success": false, "message": "invalid app or permissions"});
    let bob_get = format!("/app/getconfig.json?id={app}&apikey={bob_read}");
    assert_eq!(json_at(&server, &bob_get).await, invalid);
    for path in [
        format!("/app/remove.json?id={app}&apikey={bob_write}"),
        format!("/app/setconfig.json?id={app}&config=%7B%7D&apikey={bob_write}"),
        format!("/app/setpublic.json?id={app}&public=1&apikey={bob_write}"),
    ] {
        assert_eq!(
            json_at(&server, &path).await,
            json!({"success": false, "message": format!("App does not exist with id {app}")}),
            "{path}"
        );
    }
    json_at(
        &server,
        &format!("/app/setpublic.json?id={app}&public=1&apikey={alice_write}"),
    )
    .await;
    assert_eq!(json_at(&server, &bob_get).await["name"], "House");

    // A share link of the app reads its feeds' data, and nothing else.
    let link = json_at(
        &server,
        &format!("/share/create.json?app={app}&label=for%20my%20installer&apikey={alice_write}"),
    )
    .await;
    let token = link["token"].as_str().expect("token").to_string();
    let data = |id: i64| {
        format!(
            "/feed/data.json?id={id}&start=1699999000000&end=1700001000000&interval=10&share={token}"
        )
    };
    let (status, body) = call(&server, &data(use_feed)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("[1700000000000,5]"), "{body}");
    let (status, _) = call(
        &server,
        &format!("/feed/value.json?id={use_feed}&share={token}"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &server,
        &format!("/app/getconfig.json?id={app}&share={token}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let refused = [
        data(secret),
        format!(
            "/feed/data.json?ids={use_feed},{secret}&start=1699999000000&end=1700001000000&interval=10&share={token}"
        ),
        format!(
            "/feed/data.json?id={use_feed}&ids={secret}&start=1699999000000&end=1700001000000&interval=10&share={token}"
        ),
        format!("{}&csv=1", data(use_feed)),
        format!(
            "/feed/csvexport.json?id={use_feed}&start=1699999000&end=1700001000&interval=10&share={token}"
        ),
        format!("/feed/fetch.json?ids={use_feed}&share={token}"),
        format!("/feed/list.json?share={token}"),
        format!("/feed/get.json?id={use_feed}&field=name&share={token}"),
        format!("/input/list.json?share={token}"),
        format!("/user/get.json?share={token}"),
        format!("/app/list.json?share={token}"),
        format!("/share/list.json?share={token}"),
        // Another key beside the token opens nothing more.
        format!(
            "/feed/data.json?id={secret}&start=1699999000000&end=1700001000000&interval=10&share={token}&apikey={alice_read}"
        ),
    ];
    for path in &refused {
        let (status, body) = call(&server, path).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let (status, _) = call(&server, &format!("/ynni/live?share={token}")).await;
    assert_eq!(status, 401, "no live stream");

    // Bob cannot share alice's feeds, list or revoke her links.
    let (_, body) = call(
        &server,
        &format!("/share/create.json?feeds={secret}&apikey={bob_write}"),
    )
    .await;
    assert!(body.contains("does not exist"), "{body}");
    assert_eq!(
        json_at(&server, &format!("/share/list.json?apikey={bob_write}")).await,
        json!([])
    );
    let link_id = link["id"].as_i64().expect("id");
    let (_, body) = call(
        &server,
        &format!("/share/revoke.json?id={link_id}&apikey={bob_write}"),
    )
    .await;
    assert!(body.contains("does not exist"), "{body}");
    // The read key cannot make links (write access only).
    let (_, body) = call(
        &server,
        &format!("/share/create.json?feeds={use_feed}&apikey={alice_read}"),
    )
    .await;
    assert_eq!(body, "false");

    // Only the keys that hold feeds count: a setting whose number happens to be a feed id
    // (My Solar's `solar_disp_min`) opens nothing. A virtual feed cannot be shared.
    let solar = json_at(&server, &add("mysolarpv", "Roof", &alice_write)).await["id"]
        .as_i64()
        .expect("id");
    let config = format!("%7B%22use%22%3A{use_feed}%2C%22solar_disp_min%22%3A{secret}%7D");
    json_at(
        &server,
        &format!("/app/setconfig.json?id={solar}&config={config}&apikey={alice_write}"),
    )
    .await;
    let roof = json_at(
        &server,
        &format!("/share/create.json?app={solar}&apikey={alice_write}"),
    )
    .await["token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(
        call(&server, &data(use_feed).replace(&token, &roof))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&server, &data(secret).replace(&token, &roof)).await.0,
        403
    );
    let virtual_feed = json_at(
        &server,
        &format!("/feed/create.json?name=v&engine=7&apikey={alice_write}"),
    )
    .await["feedid"]
        .as_i64()
        .expect("virtual feed");
    let (_, body) = call(
        &server,
        &format!("/share/create.json?feeds={virtual_feed}&apikey={alice_write}"),
    )
    .await;
    assert!(body.contains("is virtual"), "{body}");

    // Its page refuses to be framed unless the owner allowed embedding for the link.
    let page = |t: &str| server.url(&format!("/app/apps?id={app}&share={t}"));
    let r = get(&script(), &page(&token)).await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(r.headers["x-frame-options"], "DENY");
    let framed = json_at(
        &server,
        &format!("/share/create.json?app={app}&embed=1&apikey={alice_write}"),
    )
    .await["token"]
        .as_str()
        .expect("token")
        .to_string();
    let r = get(&script(), &page(&framed)).await;
    assert!(
        r.headers["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains("frame-ancestors *")
    );
    assert!(r.headers.get("x-frame-options").is_none());
    // Any other page, or a made-up token, still refuses.
    let r = get(
        &script(),
        &server.url(&format!("/app/feeds?share={framed}")),
    )
    .await;
    assert_eq!(r.headers["x-frame-options"], "DENY");
    let r = get(&script(), &page("0123456789abcdef0123456789abcdef")).await;
    assert_eq!(r.headers["x-frame-options"], "DENY");
    // Nor the same page for another app, or with no app named (the list of apps, which runs
    // on the viewer's own login: framing it would invite clicks on the viewer's buttons).
    for other in [
        format!("/app/apps?id={}&share={framed}", app + 1),
        format!("/app/apps?share={framed}"),
        format!("/app/dashboards?id={app}&share={framed}"),
    ] {
        let r = get(&script(), &server.url(&other)).await;
        assert_eq!(r.headers["x-frame-options"], "DENY", "{other}");
    }

    // Taking a feed out of the app takes it out of the link at once.
    let config = format!("%7B%22use_kwh%22%3A{kwh_feed}%7D");
    json_at(
        &server,
        &format!("/app/setconfig.json?id={app}&config={config}&apikey={alice_write}"),
    )
    .await;
    assert_eq!(call(&server, &data(use_feed)).await.0, 403);

    // A feed link, listed for its owner, revoked: refused at once.
    let feeds_link = json_at(
        &server,
        &format!("/share/create.json?feeds={use_feed}&apikey={alice_write}"),
    )
    .await;
    let t2 = feeds_link["token"].as_str().expect("token").to_string();
    let d2 = data(use_feed).replace(&token, &t2);
    assert_eq!(call(&server, &d2).await.0, 200);
    let listed = json_at(&server, &format!("/share/list.json?apikey={alice_write}")).await;
    assert_eq!(listed.as_array().expect("links").len(), 4);
    assert!(!listed.to_string().contains(&t2), "tokens are never listed");
    let id2 = feeds_link["id"].as_i64().expect("id");
    json_at(
        &server,
        &format!("/share/revoke.json?id={id2}&apikey={alice_write}"),
    )
    .await;
    assert_eq!(call(&server, &d2).await.0, 401);

    // A link with an end stops at its end.
    let soon = chrono::Utc::now().timestamp() + 2;
    let timed = json_at(
        &server,
        &format!("/share/create.json?feeds={use_feed}&expires={soon}&apikey={alice_write}"),
    )
    .await;
    let t3 = timed["token"].as_str().expect("token").to_string();
    let d3 = data(use_feed).replace(&token, &t3);
    assert_eq!(call(&server, &d3).await.0, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(call(&server, &d3).await.0, 401);
}

/// emoncms's dashboard API: dashboards belong to their user (emoncms's `delete` let any write
/// key delete any dashboard; ynni's does not), content that could run script is refused, and
/// the settings are filtered as emoncms filters them. The pages are not drawn yet and say so.
#[tokio::test]
async fn dashboards_belong_to_their_user_and_refuse_script() {
    let server = Server::start();
    let (_, alice_read, alice_write) = register(&server, "alice", "password123").await;
    let (_, _, bob_write) = register(&server, "bobby", "password123").await;
    let id = json_at(
        &server,
        &format!("/dashboard/create.json?apikey={alice_write}"),
    )
    .await
    .as_i64()
    .expect("new id");
    let set = json_at(
        &server,
        &format!(
            "/dashboard/set.json?id={id}&fields=%7B%22name%22%3A%22House%22%2C%22alias%22%3A%22My%20House%22%2C%22main%22%3Atrue%7D&apikey={alice_write}"
        ),
    )
    .await;
    assert_eq!(
        set,
        json!({"success": true, "message": "Field updated", "id": id, "alias": "my-house"})
    );
    let c = script();
    let widget = r#"<div id="1" class="feedvalue" style="position:absolute; margin: 0; top:20px; left:40px; width:100px; height:40px;" feedid="3" decimals="1"></div>"#;
    // The designer's clients encode the content once more inside the form field.
    let encoded = crate::harness::encode(widget);
    let save = |key: String, content: String| {
        let (c, url) = (
            c.clone(),
            server.url(&format!("/dashboard/setcontent.json?apikey={key}")),
        );
        async move {
            crate::harness::post_form(
                &c,
                &url,
                &[
                    ("id", id.to_string().as_str()),
                    ("content", &content),
                    ("height", "60"),
                ],
            )
            .await
        }
    };
    assert_eq!(
        save(alice_write.clone(), encoded.clone()).await.json(),
        json!({"success": true, "message": "Dashboard updated"})
    );
    // More than emoncms's column holds is refused, and what was saved stays.
    let huge = crate::harness::encode(&format!("<div>{}</div>", "x".repeat(70_000)));
    assert_eq!(
        save(alice_write.clone(), huge).await.json(),
        json!({"success": false, "message": "Dashboard not updated"})
    );
    let evil = crate::harness::encode(r#"<img src=x onerror="alert(1)">"#);
    assert_eq!(
        save(alice_write.clone(), evil.clone()).await.json(),
        json!({"success": false, "message": "Error: Invalid dashboard content, content not saved"})
    );
    let row = json_at(
        &server,
        &format!("/dashboard/getcontent.json?id={id}&apikey={alice_write}"),
    )
    .await;
    assert_eq!(row["content"], widget);
    assert_eq!(
        (&row["height"], &row["main"], &row["alias"]),
        (&json!("60"), &json!("1"), &json!("my-house"))
    );
    assert_eq!(
        json_at(
            &server,
            &format!("/dashboard/list.json?apikey={alice_read}")
        )
        .await,
        json!([{"id": id, "name": "House", "alias": "my-house", "showdescription": false,
                "description": "no description", "main": true, "published": false, "public": false}])
    );

    // Bob's write key reaches none of it; alice's read key changes nothing.
    assert_eq!(
        save(bob_write.clone(), encoded.clone()).await.json(),
        json!({"success": false, "message": "Dashboard not updated"})
    );
    for path in [
        format!("/dashboard/delete.json?id={id}&apikey={bob_write}"),
        format!("/dashboard/clone.json?id={id}&apikey={bob_write}"),
        format!("/dashboard/delete.json?id={id}&apikey={alice_read}"),
    ] {
        assert_eq!(json_at(&server, &path).await, json!(false), "{path}");
    }
    assert_eq!(
        json_at(
            &server,
            &format!("/dashboard/getcontent.json?id={id}&apikey={bob_write}")
        )
        .await,
        Value::Null
    );
    assert_eq!(
        json_at(&server, &format!("/dashboard/list.json?apikey={bob_write}")).await,
        json!([])
    );
    let clone = json_at(
        &server,
        &format!("/dashboard/clone.json?id={id}&apikey={alice_write}"),
    )
    .await;
    assert!(clone.as_i64().is_some_and(|c| c > id), "{clone}");
    assert_eq!(
        json_at(
            &server,
            &format!("/dashboard/delete.json?id={id}&apikey={alice_write}")
        )
        .await,
        json!(true)
    );
    // emoncms's page addresses lead to ynni's dashboard page.
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for (path, page) in [
        (
            format!("/dashboard/view?id={clone}"),
            format!("/app/dashboards?id={clone}"),
        ),
        (
            "/dashboard/view/my-house".into(),
            "/app/dashboards?alias=my-house".into(),
        ),
        (
            format!("/dashboard/edit?id={clone}"),
            format!("/app/dashboards?id={clone}&edit=1"),
        ),
        ("/dashboard/list".into(), "/app/dashboards".into()),
    ] {
        let r = get(&no_follow, &server.url(&path)).await;
        assert_eq!(r.status, 303, "{path}: {}", r.body);
        assert_eq!(r.headers["location"], page.as_str(), "{path}");
    }
}

/// `dashboard/view.json`, what the dashboard page draws from: the owner sees the values of
/// every feed the widgets name (of theirs: never another user's, even named by id); anyone
/// sees a public dashboard with the owner's public feeds only; a dashboard's share link opens
/// that dashboard and reads the data of its feeds and nothing else, until revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_shows_only_what_its_viewer_may_read() {
    let server = Server::start();
    let (_, alice_read, alice_write) = register(&server, "alice", "password123").await;
    let (_, _, bob_write) = register(&server, "bobby", "password123").await;
    let power = feed(&server, &alice_write, "power").await;
    let temp = feed(&server, &alice_write, "temp").await;
    let secret = feed(&server, &alice_write, "secret").await;
    let bobs = feed(&server, &bob_write, "bobs").await;
    let now = chrono::Utc::now().timestamp() / 10 * 10;
    for (id, key, v) in [
        (power, &alice_write, 1500),
        (temp, &alice_write, 21),
        (secret, &alice_write, 7),
        (bobs, &bob_write, 99),
    ] {
        let (status, body) = call(
            &server,
            &format!("/feed/insert.json?id={id}&time={now}&value={v}&apikey={key}"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    json_at(
        &server,
        &format!("/feed/set.json?id={temp}&fields=%7B%22public%22%3A1%7D&apikey={alice_write}"),
    )
    .await;
    let dash = json_at(
        &server,
        &format!("/dashboard/create.json?apikey={alice_write}"),
    )
    .await
    .as_i64()
    .expect("id");
    // Widgets name power, temp (by tag:name, as emoncms's tag mode stores it) and bob's feed.
    let content = format!(
        r#"<div id="1" class="feedvalue" style="top:0px;" feedid="{power}"></div><div id="2" class="dial" style="top:60px;" feedid=":temp"></div><div id="3" class="led" feedid="{bobs}"></div>"#
    );
    let r = crate::harness::post_form(
        &script(),
        &server.url(&format!("/dashboard/setcontent.json?apikey={alice_write}")),
        &[
            ("id", dash.to_string().as_str()),
            ("content", &crate::harness::encode(&content)),
            ("height", "200"),
        ],
    )
    .await;
    assert_eq!(r.json()["success"], json!(true), "{}", r.body);
    let feeds_of = |v: &Value| -> Vec<(i64, f64)> {
        v["feeds"]
            .as_array()
            .expect("feeds")
            .iter()
            .map(|f| {
                (
                    f["id"].as_str().and_then(|i| i.parse().ok()).expect("id"),
                    f["value"].as_f64().expect("value"),
                )
            })
            .collect()
    };
    let view = |q: String| {
        let server = &server;
        async move { call(server, &format!("/dashboard/view.json?id={dash}&{q}")).await }
    };

    let owner = json_at(
        &server,
        &format!("/dashboard/view.json?id={dash}&apikey={alice_read}"),
    )
    .await;
    assert_eq!(feeds_of(&owner), [(power, 1500.0), (temp, 21.0)]);
    assert_eq!(owner["content"], json!(content));
    assert_eq!(
        (&owner["owner"], &owner["editable"]),
        (&json!(true), &json!(false)),
        "a key never edits"
    );
    // Not public: bob and nobody see nothing, as for a dashboard that does not exist.
    for q in [format!("apikey={bob_write}"), String::new()] {
        assert_eq!(view(q.clone()).await, (200, "false".into()), "{q}");
    }
    assert_eq!(
        call(
            &server,
            &format!("/dashboard/view.json?id=999&apikey={alice_read}")
        )
        .await,
        (200, "false".into())
    );
    json_at(
        &server,
        &format!(
            "/dashboard/set.json?id={dash}&fields=%7B%22public%22%3A1%2C%22alias%22%3A%22home%22%7D&apikey={alice_write}"
        ),
    )
    .await;
    for q in [
        format!("apikey={bob_write}"),
        String::new(),
        "username=alice&alias=home".into(),
    ] {
        let path = if q.starts_with("username") {
            format!("/dashboard/view.json?{q}")
        } else {
            format!("/dashboard/view.json?id={dash}&{q}")
        };
        let (status, body) = call(&server, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(feeds_of(&v), [(temp, 21.0)], "{path}: public feeds only");
        assert_eq!(v["owner"], json!(false));
    }
    // Bob's alias lookup stays within bob's own dashboards.
    assert_eq!(
        call(
            &server,
            &format!("/dashboard/view.json?alias=home&apikey={bob_write}")
        )
        .await,
        (200, "false".into())
    );
    json_at(
        &server,
        &format!(
            "/dashboard/set.json?id={dash}&fields=%7B%22public%22%3A0%7D&apikey={alice_write}"
        ),
    )
    .await;

    // A share link of the dashboard.
    let (status, body) = call(
        &server,
        &format!("/share/create.json?dashboard={dash}&apikey={bob_write}"),
    )
    .await;
    assert!(body.contains("Dashboard does not exist"), "{status} {body}");
    let link = json_at(
        &server,
        &format!("/share/create.json?dashboard={dash}&label=kitchen&apikey={alice_write}"),
    )
    .await;
    let token = link["token"].as_str().expect("token").to_string();
    let shared = json_at(
        &server,
        &format!("/dashboard/view.json?id={dash}&share={token}"),
    )
    .await;
    assert_eq!(feeds_of(&shared), [(power, 1500.0), (temp, 21.0)]);
    assert_eq!(shared["editable"], json!(false));
    let data = |id: i64| {
        format!(
            "/feed/data.json?id={id}&start={}&end={}&interval=10&share={token}",
            (now - 60) * 1000,
            (now + 60) * 1000
        )
    };
    let (status, body) = call(&server, &data(power)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("1500"), "{body}");
    let other = json_at(
        &server,
        &format!("/dashboard/create.json?apikey={alice_write}"),
    )
    .await;
    for path in [
        data(secret),
        data(bobs),
        format!("/dashboard/view.json?id={other}&share={token}"),
        format!("/dashboard/view.json?alias=home&share={token}"),
        format!("/dashboard/list.json?share={token}"),
        format!("/dashboard/getcontent.json?id={dash}&share={token}"),
        format!("/feed/list.json?share={token}"),
    ] {
        let (status, body) = call(&server, &path).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    let id = link["id"].as_i64().expect("id");
    json_at(
        &server,
        &format!("/share/revoke.json?id={id}&apikey={alice_write}"),
    )
    .await;
    let (status, _) = call(
        &server,
        &format!("/dashboard/view.json?id={dash}&share={token}"),
    )
    .await;
    assert_eq!(status, 401);
}

/// An account has at most 1,000 apps (each read whole by `app/getconfig` without an id); the
/// limit is its own, not another account's.
#[tokio::test]
async fn an_account_has_at_most_a_thousand_apps() {
    let server = Server::start();
    let (_, _, alice_write) = register(&server, "alice", "secret1").await;
    let (_, _, bob_write) = register(&server, "bobby", "secret1").await;
    let add =
        |name: String, key: &str| format!("/app/add.json?app=myelectric&name={name}&apikey={key}");
    for i in 0..1000 {
        let created = json_at(&server, &add(format!("a{i}"), &alice_write)).await;
        assert_eq!(created["success"], true, "{i}: {created}");
    }
    assert_eq!(
        json_at(&server, &add("one-more".into(), &alice_write)).await,
        json!({"success": false, "message": "Too many apps: at most 1000"})
    );
    let bobs = json_at(&server, &add("a0".into(), &bob_write)).await;
    assert_eq!(bobs["success"], true, "{bobs}");
}
