//! Every HTTP action, tried by one user against another's feeds, inputs, devices and nodes,
//! with each kind of credential (write key, read key, browser session, device key, none).
//!
//! The oracle: to anyone but their owner, what a user's private objects hold makes no
//! difference. For each action that names an object, the attacker's reply about alice's object
//! must equal its reply about carol's, which has other names and values (emoncms tells a
//! foreign id from a missing one, and ynni keeps its answers; ids are sequential anyway), and
//! the same action on the attacker's own object must answer differently, so the action was
//! spelt right and the comparison can fail. On top of that: no reply carries alice's or carol's
//! private names, values or keys, and everything alice can read of her account is unchanged
//! at the end.

use std::collections::HashMap;

use crate::harness::*;

const T0: i64 = 1_699_999_200;
/// Each account's private value, which must never reach another, and the value of its public
/// feed, which anyone may read.
pub(crate) const ALICE_VALUE: &str = "98765.4321";
pub(crate) const BOB_VALUE: &str = "12345.678";
pub(crate) const CAROL_VALUE: &str = "45678.9012";
const PUBLIC_VALUE: &str = "11.5";

/// One action, with `{X}` placeholders filled from the account it is aimed at (`F` private
/// feed, `P` public feed, `V` virtual feed, `I` input, `IN` its name, `N` node, `D` device,
/// `U` userid, `FN`/`FT` the private feed's name and tag) and from the attacker's own
/// objects (`BF` feed, `BV` virtual feed, `BI` input), which cross-references use.
struct Action {
    path: &'static str,
    /// Sent as a POST body (octet-stream) when not empty.
    body: &'static [u8],
    /// Whether the action names an object, so that the reply about alice's must equal the
    /// reply about nobody's; listings and actions on the caller's own account are checked by
    /// leaks and by alice's state only.
    scoped: bool,
    /// Whether the same action on the attacker's own object must answer differently (off
    /// where an earlier action of the table already took the object away).
    control: bool,
    /// Sends a `feed/sync` body naming the target's private feed instead of `body`.
    sync: bool,
}

const fn scoped(path: &'static str) -> Action {
    Action {
        path,
        body: &[],
        scoped: true,
        control: true,
        sync: false,
    }
}

const fn unscoped(path: &'static str) -> Action {
    Action {
        path,
        body: &[],
        scoped: false,
        control: false,
        sync: false,
    }
}

const RANGE: &str = "start=1699999000000&end=1699999400000&interval=10";

/// Reads first, then changes, then deletions: the controls run on the attacker's own objects
/// in this order.
fn actions() -> Vec<Action> {
    // Leaked so the table can hold `&'static str` built from RANGE.
    let with_range = |p: &str| -> &'static str { Box::leak(format!("{p}&{RANGE}").into()) };
    vec![
        scoped("/feed/get.json?id={F}&field=name"),
        scoped("/feed/aget.json?id={F}"),
        scoped("/feed/getmeta.json?id={F}"),
        scoped("/feed/value.json?id={F}"),
        scoped("/feed/timevalue.json?id={F}"),
        scoped("/feed/fetch.json?ids={F}"),
        scoped(with_range("/feed/data.json?id={F}")),
        scoped(with_range("/feed/data.json?ids={F}")),
        scoped(with_range("/feed/data.json?id={V}")),
        scoped(with_range("/feed/average.json?id={F}")),
        scoped(with_range("/feed/csvexport.json?id={F}")),
        scoped("/feed/getfeedsize.json?id={F}"),
        scoped("/feed/export.json?id={F}&start=0"),
        scoped("/feed/sha256sum.json?id={F}"),
        scoped("/feed/process/get.json?id={V}"),
        scoped("/feed/getid.json?tag={FT}&name={FN}"),
        scoped("/input/get/{N}/{IN}.json"),
        scoped("/input/get/{N}.json"),
        scoped("/input/process/get.json?inputid={I}"),
        scoped("/device/get.json?id={D}"),
        unscoped("/feed/list.json"),
        unscoped("/feed/list.json?userid={U}"),
        unscoped("/feed/listwithmeta.json?userid={U}"),
        unscoped("/feed/updatesize.json"),
        unscoped("/feed/buffersize.json"),
        unscoped("/input/list.json"),
        unscoped("/input/get.json"),
        unscoped("/input/getinputs.json"),
        unscoped("/input/isdisabled.json"),
        unscoped("/device/list.json"),
        unscoped("/user/get.json"),
        unscoped("/ynni/homeassistant.json"),
        unscoped("/admin/status.json"),
        unscoped("/process/list.json"),
        // Changes.
        scoped(r#"/feed/set.json?id={F}&fields={"name":"pwned","public":1}"#),
        scoped(r#"/feed/set-multiple.json?feeds=[{"id":{F},"tag":"pwned"}]"#),
        scoped("/feed/insert.json?id={F}&time=1700000000&value=1"),
        scoped("/feed/post.json?id={F}&data=[[1700000010,2]]"),
        scoped("/feed/update.json?id={F}&time=1700000020&value=3"),
        scoped("/feed/scalerange.json?id={F}&start=1699999000&end=1700000100&value=2"),
        scoped("/feed/deletedatapoint.json?id={F}&feedtime=1699999200"),
        Action {
            path: "/feed/upload.json?id={F}&start=1700000030&interval=10&npoints=1",
            body: &[0, 0, 128, 63],
            scoped: true,
            control: true,
            sync: false,
        },
        Action {
            sync: true,
            ..scoped("/feed/sync.json?id={F}")
        },
        scoped(
            r#"/feed/process/set.json?id={V}&processlist=[{"fn":"process__source_feed_data_time","args":["{BF}"]}]"#,
        ),
        scoped(
            r#"/feed/process/set.json?id={BV}&processlist=[{"fn":"process__source_feed_data_time","args":["{F}"]}]"#,
        ),
        scoped(
            r#"/input/process/set.json?inputid={I}&processlist=[{"fn":"process__log_to_feed","args":["{BF}"]}]"#,
        ),
        scoped(
            r#"/input/process/set.json?inputid={BI}&processlist=[{"fn":"process__log_to_feed","args":["{F}"]}]"#,
        ),
        scoped(
            r#"/input/process/set.json?inputid={BI}&processlist=[{"fn":"process__add_feed","args":["{F}"]}]"#,
        ),
        scoped(
            r#"/input/process/set.json?inputid={BI}&processlist=[{"fn":"process__add_input","args":["{I}"]}]"#,
        ),
        scoped(r#"/input/set.json?inputid={I}&fields={"description":"pwned"}"#),
        scoped(r#"/input/set-descriptions.json?inputs=[{"id":{I},"description":"pwned"}]"#),
        scoped("/input/process/reset.json?inputid={I}"),
        scoped(r#"/device/set.json?id={D}&fields={"name":"pwned"}"#),
        scoped("/device/newdevicekey.json?id={D}"),
        unscoped("/input/set-node-input-descriptions.json?nodeid={N}&names=a,b"),
        unscoped(r#"/input/post.json?node={N}&fulljson={"x":1}"#),
        unscoped(r#"/input/bulk.json?data=[[0,"{N}",1]]"#),
        unscoped("/input/disable.json"),
        unscoped("/input/enable.json"),
        unscoped("/input/cleanprocesslistfeeds.json"),
        unscoped(r#"/feed/create.json?name=extra&tag=extra&engine=5&options={"interval":10}"#),
        // Deletions, last.
        scoped("/feed/trim.json?id={F}&start_time=1700000000"),
        scoped("/feed/clear.json?id={F}"),
        scoped("/input/delete.json?inputids=[{I}]"),
        Action {
            control: false,
            ..scoped("/input/delete.json?inputid={I}")
        },
        scoped("/feed/delete.json?id={F}"),
        scoped("/device/delete.json?id={D}"),
        unscoped("/input/clean.json"),
    ]
}

/// One user's account as the test set it up.
pub(crate) struct Account {
    pub(crate) id: i64,
    name: &'static str,
    read: String,
    write: String,
    device_key: String,
    session: reqwest::Client,
    /// Placeholder → value for the account's objects.
    ids: HashMap<&'static str, String>,
}

#[derive(Clone, Copy, Debug)]
enum Credential {
    Write,
    Read,
    Session,
    Device,
    Anonymous,
}

const CREDENTIALS: [Credential; 5] = [
    Credential::Write,
    Credential::Read,
    Credential::Session,
    Credential::Device,
    Credential::Anonymous,
];

/// Fills the placeholders: the target's objects, then the caller's own.
fn fill(template: &str, target: &HashMap<&str, String>, own: &HashMap<&str, String>) -> String {
    let mut s = template.to_string();
    for (k, v) in own {
        s = s.replace(&format!("{{B{k}}}"), v);
    }
    for (k, v) in target {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    assert!(!s.contains("{B") && !s.contains("{F}"), "unfilled: {s}");
    s
}

/// Percent-encodes each query value, so JSON survives the trip.
fn encode_query(path: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => format!("{k}={}", encode(v)),
            None => kv.to_string(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

async fn call(
    server: &Server,
    caller: &Account,
    how: Credential,
    action: &Action,
    target: &HashMap<&str, String>,
) -> Reply {
    let filled = fill(action.path, target, &caller.ids);
    // emoncms reads process lists from the POST body only.
    let (path, form) = match filled.split_once("&processlist=") {
        Some((path, list)) => (
            encode_query(path),
            Some(format!("processlist={}", encode(list))),
        ),
        None => (encode_query(&filled), None),
    };
    let sep = if path.contains('?') { '&' } else { '?' };
    let (client, url) = match how {
        Credential::Write => (script(), format!("{path}{sep}apikey={}", caller.write)),
        Credential::Read => (script(), format!("{path}{sep}apikey={}", caller.read)),
        Credential::Device => (
            script(),
            format!("{path}{sep}devicekey={}", caller.device_key),
        ),
        Credential::Session => (caller.session.clone(), path),
        Credential::Anonymous => (script(), path),
    };
    let url = server.url(&url);
    let req = if action.sync {
        let feed = target
            .get("F")
            .and_then(|f| f.parse::<u32>().ok())
            .expect("feed id");
        client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(sync_body(feed))
    } else if let Some(form) = form {
        client
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
    } else if action.body.is_empty() {
        client.get(url)
    } else {
        client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(action.body.to_vec())
    };
    send(req).await
}

/// A `feed/sync` body with one PHPFina segment for `feed` (one value at T0, interval 10) and
/// its CRC-32.
fn sync_body(feed: u32) -> Vec<u8> {
    let mut body = Vec::new();
    for w in [24, feed, T0 as u32, 10, 0] {
        body.extend_from_slice(&w.to_le_bytes());
    }
    body.extend_from_slice(&1f32.to_le_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&body);
    body.extend_from_slice(&crc.sum().to_le_bytes());
    body
}

/// The reply with the ids it was asked about replaced by a marker, so that a reply echoing
/// an id compares equal to one echoing another.
fn normalised(reply: &Reply, action: &Action, ids: &HashMap<&str, String>) -> String {
    let mut body = reply.body.clone();
    let mut values: Vec<&String> = ids
        .iter()
        .filter(|(k, _)| action.path.contains(&format!("{{{k}}}")))
        .map(|(_, v)| v)
        .collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for v in values {
        body = replace_token(&body, v, "<id>");
    }
    format!("{} {}", reply.status, body)
}

/// Replaces `from` where it is not part of a longer word or number.
fn replace_token(text: &str, from: &str, to: &str) -> String {
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::new();
    let mut prev: Option<char> = None;
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let before = rest[..at].chars().last().or(prev);
        let after = rest[at + from.len()..].chars().next();
        out.push_str(&rest[..at]);
        out.push_str(if is_word(before) || is_word(after) {
            from
        } else {
            to
        });
        prev = from.chars().last();
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

pub(crate) async fn setup(server: &Server, name: &'static str, value: &str) -> Account {
    let (userid, read, write) = register(server, name, "secret123").await;
    let c = script();
    let w = |p: &str| {
        let p = encode_query(p);
        let sep = if p.contains('?') { '&' } else { '?' };
        server.url(&format!("{p}{sep}apikey={write}"))
    };
    let node = format!("{name}node");
    let input = format!("{name}secretinput");
    let (feed, tag) = (format!("{name}secretfeed"), format!("{name}secrettag"));
    let r = get(
        &c,
        &w(&format!(
            "/input/post.json?node={node}&time={T0}&fulljson={{\"{input}\":{value}}}"
        )),
    )
    .await;
    assert!(r.body.contains("true") || r.body == "ok", "{}", r.body);
    let created = |name: &str, tag: &str, engine: u8| {
        w(&format!(
            "/feed/create.json?name={name}&tag={tag}&engine={engine}&options={{\"interval\":10}}"
        ))
    };
    let feed_id = get(&c, &created(&feed, &tag, 5)).await.json()["feedid"].to_string();
    let public = format!("{name}publicfeed");
    let public_id = get(&c, &created(&public, "pub", 5)).await.json()["feedid"].to_string();
    let virtual_id = get(&c, &created(&format!("{name}secretvirtual"), &tag, 7))
        .await
        .json()["feedid"]
        .to_string();
    assert!(
        [&feed_id, &public_id, &virtual_id]
            .iter()
            .all(|i| i.parse::<i64>().is_ok()),
        "{feed_id} {public_id} {virtual_id}"
    );
    let ok = get(
        &c,
        &w(&format!(
            r#"/feed/set.json?id={public_id}&fields={{"public":1}}"#
        )),
    )
    .await;
    assert!(ok.body.contains("true"), "{}", ok.body);
    for (id, v) in [(&feed_id, value), (&public_id, PUBLIC_VALUE)] {
        let r = get(
            &c,
            &w(&format!("/feed/insert.json?id={id}&time={T0}&value={v}")),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = post_form(
        &c,
        &w(&format!("/feed/process/set.json?id={virtual_id}")),
        &[(
            "processlist",
            &format!(r#"[{{"fn":"process__source_feed_data_time","args":["{feed_id}"]}}]"#),
        )],
    )
    .await;
    assert!(r.body.contains("true"), "virtual feed: {}", r.body);
    let inputs = get(&c, &w("/input/list.json")).await.json();
    let input_id = inputs[0]["id"].as_str().expect("input id").to_string();
    let r = post_form(
        &c,
        &w(&format!("/input/process/set.json?inputid={input_id}")),
        &[(
            "processlist",
            &format!(r#"[{{"fn":"process__log_to_feed","args":["{feed_id}"]}}]"#),
        )],
    )
    .await;
    assert!(r.body.contains("true"), "input process list: {}", r.body);
    let device = get(
        &c,
        &w(&format!(
            "/device/create.json?nodeid={node}&name={name}secretdevice"
        )),
    )
    .await
    .json()
    .to_string();
    let devices = get(&c, &w("/device/list.json")).await.json();
    let device_key = devices[0]["devicekey"]
        .as_str()
        .expect("device key")
        .to_string();
    let session = browser();
    let r = post_form(
        &session,
        &server.url("/user/login.json"),
        &[("username", name), ("password", "secret123")],
    )
    .await;
    assert_eq!(r.json()["success"], true, "login {name}: {}", r.body);
    let ids = HashMap::from([
        ("F", feed_id),
        ("P", public_id),
        ("V", virtual_id),
        ("I", input_id),
        ("IN", input),
        ("N", node),
        ("D", device),
        ("U", userid.to_string()),
        ("FN", feed),
        ("FT", tag),
    ]);
    Account {
        id: userid,
        name,
        read,
        write,
        device_key,
        session,
        ids,
    }
}

/// Cluster mode: alice, bob and carol set up through `server`, with alice's and bob's
/// accounts on different nodes (`owner_of` names the node owning an account id; accounts
/// in between take the ids that would have put bob beside alice).
pub(crate) async fn setup_apart(
    server: &Server,
    owner_of: &dyn Fn(i64) -> String,
) -> (Account, Account, Account) {
    let alice = setup(server, "alice", ALICE_VALUE).await;
    for n in 0..64 {
        let (id, _, _) = register(server, &format!("filler{n}"), "secret123").await;
        if owner_of(id + 1) != owner_of(alice.id) {
            break;
        }
    }
    let bob = setup(server, "bob", BOB_VALUE).await;
    assert_ne!(owner_of(bob.id), owner_of(alice.id), "bob beside alice");
    let carol = setup(server, "carol", CAROL_VALUE).await;
    (alice, bob, carol)
}

/// Everything the account's owner can read about it, one reply per line.
async fn snapshot(server: &Server, a: &Account) -> Vec<String> {
    let c = script();
    let ids = &a.ids;
    let mut paths = vec![
        "/feed/list.json".to_string(),
        "/input/list.json".to_string(),
        "/device/list.json".to_string(),
        "/user/get.json".to_string(),
        "/input/isdisabled.json".to_string(),
        format!("/input/process/get.json?inputid={}", ids["I"]),
        format!("/feed/process/get.json?id={}", ids["V"]),
    ];
    for f in ["F", "P", "V"] {
        paths.push(format!("/feed/data.json?id={}&{RANGE}", ids[f]));
        paths.push(format!("/feed/getmeta.json?id={}", ids[f]));
    }
    let mut out = Vec::new();
    for p in paths {
        let sep = if p.contains('?') { '&' } else { '?' };
        let r = get(&c, &server.url(&format!("{p}{sep}apikey={}", a.write))).await;
        out.push(format!("{p}: {} {}", r.status, r.body));
    }
    out
}

/// An account's private markers: none of them may appear in a reply to anyone else.
fn private_markers(a: &Account, value: &str) -> Vec<String> {
    vec![
        format!("{}secret", a.name),
        value.to_string(),
        a.read.clone(),
        a.write.clone(),
        a.device_key.clone(),
        format!("{}@example.com", a.name),
    ]
}

#[tokio::test]
async fn no_action_reaches_another_users_objects() {
    let server = Server::start();
    // The first account may be the administrator: neither alice nor bob is.
    register(&server, "root", "secret123").await;
    let alice = setup(&server, "alice", ALICE_VALUE).await;
    let bob = setup(&server, "bob", BOB_VALUE).await;
    let carol = setup(&server, "carol", CAROL_VALUE).await;
    let failures = sweep(&server, &alice, &bob, &carol).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Bob tries every action with every credential on alice's objects through `server`: what he
/// learns of alice or carol, changes of alice's account, server errors, and answers that
/// differ between an object of alice's and one of carol's are the failures returned.
pub(crate) async fn sweep(
    server: &Server,
    alice: &Account,
    bob: &Account,
    carol: &Account,
) -> Vec<String> {
    let before = snapshot(server, alice).await;
    assert!(
        before.iter().any(|l| l.contains(ALICE_VALUE)),
        "alice's snapshot shows her data: {before:#?}"
    );
    let mut secrets = private_markers(alice, ALICE_VALUE);
    secrets.extend(private_markers(carol, CAROL_VALUE));
    let mut failures = Vec::new();
    for action in actions() {
        for how in CREDENTIALS {
            let theirs = call(server, bob, how, &action, &alice.ids).await;
            for s in &secrets {
                if theirs.body.contains(s.as_str()) {
                    failures.push(format!(
                        "{how:?} {}: reply shows alice's {s:?}: {}",
                        action.path, theirs.body
                    ));
                }
            }
            if theirs.status >= 500 && theirs.status != 501 {
                failures.push(format!(
                    "{how:?} {}: {} {}",
                    action.path, theirs.status, theirs.body
                ));
            }
            if action.scoped {
                let other = call(server, bob, how, &action, &carol.ids).await;
                let (t, o) = (
                    normalised(&theirs, &action, &alice.ids),
                    normalised(&other, &action, &carol.ids),
                );
                // Equal as sent, or equal once the ids asked about are blanked out.
                if theirs.body != other.body && t != o {
                    failures.push(format!(
                        "{how:?} {}: alice's object answers {t:?}, carol's {o:?}",
                        action.path
                    ));
                }
            }
        }
    }
    let after = snapshot(server, alice).await;
    for (b, a) in before.iter().zip(&after) {
        if a != b {
            failures.push(format!(
                "alice's account changed:\n  before {b}\n  after  {a}"
            ));
        }
    }
    // The controls: each scoped action does something for the owner of the object.
    for action in actions().iter().filter(|a| a.control) {
        let own = call(server, bob, Credential::Write, action, &bob.ids).await;
        let other = call(server, bob, Credential::Write, action, &carol.ids).await;
        if normalised(&own, action, &bob.ids) == normalised(&other, action, &carol.ids) {
            failures.push(format!(
                "control {}: bob's own object answers as carol's: {}",
                action.path, own.body
            ));
        }
    }
    failures
}
