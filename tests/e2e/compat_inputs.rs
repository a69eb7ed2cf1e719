//! emoncms 11.16.8's answers in the corners of the input routes: the node as a path segment,
//! action aliases and actions the controller does not know, `input/set` with fields it does
//! not read, `input/delete` with a malformed `inputids`, `input/clean`, the description
//! setters, and `input/bulk` with `c` data that is hex but not zlib. Each case names the
//! emoncms source it follows (file and function).

use std::io::Write;

use serde_json::json;

use crate::harness::*;

const T0: i64 = 1_699_999_200;
/// What emoncms's index.php sends for `input/post`, `input/bulk` and the `text` format (PHP
/// adds the charset to a `text/plain` header).
const TEXT: &str = "text/plain;charset=UTF-8";
/// index.php's header for the `json` format.
const JSON: &str = "application/json";

/// Status, content type and body, for one exact comparison.
fn seen(r: &Reply) -> (u16, &str, &str) {
    (r.status, r.content_type.as_str(), r.body.as_str())
}

/// `path` with `key` as its apikey.
fn keyed(server: &Server, path: &str, key: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    server.url(&format!("{path}{sep}apikey={key}"))
}

/// The id of the caller's input `node`/`name`, from `input/list`.
async fn input_id(server: &Server, read: &str, node: &str, name: &str) -> i64 {
    let list = get(&script(), &keyed(server, "/input/list.json", read))
        .await
        .json();
    list.as_array()
        .and_then(|a| a.iter().find(|i| i["nodeid"] == node && i["name"] == name))
        .and_then(|i| i["id"].as_str())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no input {node}/{name} in {list}"))
}

/// How many inputs the caller has.
async fn input_count(server: &Server, read: &str) -> usize {
    get(&script(), &keyed(server, "/input/list.json", read))
        .await
        .json()
        .as_array()
        .map_or(0, Vec::len)
}

/// Lowercase hex of `bytes`, as a client builds `c=1` data.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn zlib(text: &str) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(text.as_bytes()).expect("compress");
    z.finish().expect("finish")
}

#[tokio::test]
async fn the_node_as_a_path_segment() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let w = |p: &str| keyed(&server, p, &write);
    let r = |p: &str| keyed(&server, p, &read);

    // input_methods.php, InputMethods::post: the node is `$route->subaction` when there is
    // one; index.php forces the json format for the action `post` and prints its reply as
    // text/plain.
    let fulljson = encode(r#"{"power1":100}"#);
    let got = get(
        &c,
        &w(&format!("/input/post/emontx?fulljson={fulljson}&time={T0}")),
    )
    .await;
    assert_eq!(seen(&got), (200, TEXT, "{\"success\": true}"));
    // route.php, Route::decode: the format is cut from the last segment only, so
    // `emontx.json` is the node `emontx`.
    let got = get(&c, &w(&format!("/input/post/emontx.json?csv=5&time={T0}"))).await;
    assert_eq!(seen(&got), (200, TEXT, "ok"));
    // InputMethods::post: the subaction wins over a `node` parameter.
    let got = get(
        &c,
        &w(&format!("/input/post/emontx?node=other&csv=6,7&time={T0}")),
    )
    .await;
    assert_eq!(seen(&got), (200, TEXT, "ok"));
    let node = get(&c, &r("/input/get/emontx")).await.json();
    assert_eq!(
        node,
        json!({
            "power1": {"time": T0, "value": 100, "processList": ""},
            "1": {"time": T0, "value": 6, "processList": ""},
            "2": {"time": T0, "value": 7, "processList": ""},
        })
    );
    assert_eq!(
        seen(&get(&c, &r("/input/get/other")).await),
        (200, JSON, "\"Node does not exist\"")
    );

    // route.php, Route::decode: `post.json/emontx` is the action `post.json` with the
    // subaction `emontx`. input_controller.php knows no action `post.json` (nor `bulk.json`)
    // and returns its initial `$result = false`, which index.php prints as JSON (text only
    // for the actions `post` and `bulk`). Nothing is stored.
    let got = get(
        &c,
        &w(&format!(
            "/input/post.json/emontx?fulljson={}&time={T0}",
            encode(r#"{"power1":999}"#)
        )),
    )
    .await;
    assert_eq!(seen(&got), (200, JSON, "false"));
    let got = get(
        &c,
        &w(&format!(
            "/input/bulk.json/emontx?data={}&time={T0}",
            encode(r#"[[0,"emontx",999]]"#)
        )),
    )
    .await;
    assert_eq!(seen(&got), (200, JSON, "false"));
    // input_controller.php: a read key skips the write actions, and no key at all returns
    // `false` before any action; the same `false`.
    let got = get(&c, &r("/input/post.json/emontx?csv=1")).await;
    assert_eq!(seen(&got), (200, JSON, "false"));
    let got = get(&c, &server.url("/input/post.json/emontx?csv=1")).await;
    assert_eq!(seen(&got), (200, JSON, "false"));
    assert_eq!(get(&c, &r("/input/get/emontx")).await.json(), node);
    assert_eq!(input_count(&server, &read).await, 3);

    // InputMethods::post tests `if ($route->subaction)`, PHP truth: the segment `0` is no
    // node, so the `node` parameter names it, and without one it is the default node 0.
    let got = get(
        &c,
        &w(&format!("/input/post/0?node=fromparam&csv=8&time={T0}")),
    )
    .await;
    assert_eq!(seen(&got), (200, TEXT, "ok"));
    assert_eq!(
        get(&c, &r("/input/get/fromparam/1")).await.json(),
        json!({"time": T0, "value": 8, "processList": ""})
    );
    let got = get(&c, &w(&format!("/input/post/0?csv=9&time={T0}"))).await;
    assert_eq!(seen(&got), (200, TEXT, "ok"));
    // input_controller.php reads `?node=` when the segment is falsy.
    assert_eq!(
        get(&c, &r("/input/get?node=0")).await.json(),
        json!({"1": {"time": T0, "value": 9, "processList": ""}})
    );
}

#[tokio::test]
async fn action_aliases_and_unknown_actions() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let w = |p: &str| keyed(&server, p, &write);
    let r = |p: &str| keyed(&server, p, &read);
    let got = get(
        &c,
        &w(&format!(
            "/input/post?node=emontx&fulljson={}&time={T0}",
            encode(r#"{"power1":100,"power2":200}"#)
        )),
    )
    .await;
    assert_eq!(got.body, "{\"success\": true}");
    let (p1, p2) = (
        input_id(&server, &read, "emontx", "power1").await,
        input_id(&server, &read, "emontx", "power2").await,
    );

    // input_controller.php: `getinputs` and `get_inputs` both return Input::get_inputs, as
    // JSON whatever the suffix (the controller sets the json format).
    let canonical = get(&c, &r("/input/getinputs.json")).await;
    assert_eq!(
        canonical.json(),
        json!({"emontx": {
            "power1": {"id": p1.to_string(), "processList": ""},
            "power2": {"id": p2.to_string(), "processList": ""},
        }})
    );
    for path in ["/input/get_inputs", "/input/get_inputs.json"] {
        let got = get(&c, &r(path)).await;
        assert_eq!(seen(&got), (200, JSON, canonical.body.as_str()), "{path}");
    }
    // input_controller.php: without a read session it returns `false` before any action.
    let got = get(&c, &server.url("/input/get_inputs.json")).await;
    assert_eq!(seen(&got), (200, JSON, "false"));

    // input_controller.php ends with `return array('content'=>$result)`, `$result` still
    // false, for any action it does not know: 200 `false`, never index.php's 406 (which is
    // for a controller that does not exist). Dotted actions (`get.json/emontx`) and the
    // empty action are unknown actions too.
    for path in [
        "/input/nosuch.json",
        "/input/nosuch",
        "/input/get.json/emontx",
        "/input/list.json/x",
        "/input.json",
    ] {
        for key in [&write, &read] {
            let got = get(&c, &keyed(&server, path, key)).await;
            assert_eq!(seen(&got), (200, JSON, "false"), "{path}");
        }
    }

    // input_controller.php, action `get`: the segments are tested for PHP truth, so
    // `input/get/0` is the whole list (no `?node=`), and `input/get/<node>/0` the whole node
    // (no `?name=`).
    let all = get(&c, &r("/input/get")).await;
    assert_eq!(seen(&get(&c, &r("/input/get/0")).await), seen(&all));
    let node = get(&c, &r("/input/get/emontx")).await;
    assert_eq!(seen(&get(&c, &r("/input/get/emontx/0")).await), seen(&node));
    assert_eq!(
        get(&c, &r("/input/get/emontx/0?name=power2")).await.json(),
        json!({"time": T0, "value": 200, "processList": ""})
    );
}

#[tokio::test]
async fn input_set_reads_only_name_and_description() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let got = get(
        &c,
        &keyed(
            &server,
            &format!("/input/post?node=n1&json=%7Ba%3A1%2Cb%3A2%7D&time={T0}"),
            &write,
        ),
    )
    .await;
    assert_eq!(got.body, "ok");
    let a = input_id(&server, &read, "n1", "a").await;
    let set = |id: i64, fields: &str| {
        keyed(
            &server,
            &format!("/input/set.json?inputid={id}&fields={}", encode(fields)),
            &write,
        )
    };
    let field = |list: &serde_json::Value, key: &str| {
        list.as_array()
            .and_then(|l| {
                l.iter()
                    .find(|i| i["id"].as_str().and_then(|s| s.parse::<i64>().ok()) == Some(a))
            })
            .map(|i| i[key].clone())
            .unwrap_or_default()
    };
    let list_url = keyed(&server, "/input/list.json", &read);

    // input_model.php, Input::set_fields: only `name` and `description` are read; other keys
    // are ignored, and the reply's `fields` holds only what was set.
    let got = get(
        &c,
        &set(
            a,
            r#"{"description":"Solar","unit":"W","processList":"1:1"}"#,
        ),
    )
    .await;
    let want = format!(
        r#"{{"success":true,"message":"Field updated","inputid":{a},"fields":{{"description":"Solar"}}}}"#
    );
    assert_eq!(seen(&got), (200, JSON, want.as_str()));
    let l = get(&c, &list_url).await.json();
    assert_eq!(
        (field(&l, "description"), field(&l, "processList")),
        (json!("Solar"), json!(""))
    );

    // Input::set_fields: with neither field set (unknown keys only, a `null` one, which
    // `isset` skips, or text that json_decode cannot read) `$success` stays false.
    for fields in [
        r#"{"unit":"W"}"#,
        r#"{"description":null}"#,
        "not json",
        "[1]",
    ] {
        let got = get(&c, &set(a, fields)).await;
        assert_eq!(
            seen(&got),
            (
                200,
                JSON,
                r#"{"success":false,"message":"Field could not be updated"}"#
            ),
            "{fields}"
        );
    }

    // Input::set_fields fills the reply name first, then description.
    let got = get(
        &c,
        &set(a, r#"{"description":"Solar roof","name":"solar"}"#),
    )
    .await;
    let want = format!(
        r#"{{"success":true,"message":"Field updated","inputid":{a},"fields":{{"name":"solar","description":"Solar roof"}}}}"#
    );
    assert_eq!(seen(&got), (200, JSON, want.as_str()));

    // Input::set_fields stores a valid name before it checks the description, and keeps it
    // when the description is refused.
    let got = get(&c, &set(a, r#"{"name":"pv","description":"bad!"}"#)).await;
    assert_eq!(
        seen(&got),
        (
            200,
            JSON,
            r#"{"success":false,"message":"invalid characters in input description"}"#
        )
    );
    let l = get(&c, &list_url).await.json();
    assert_eq!(
        (field(&l, "name"), field(&l, "description")),
        (json!("pv"), json!("Solar roof"))
    );
    // A refused name changes nothing.
    let got = get(&c, &set(a, r#"{"name":"p.v","description":"other"}"#)).await;
    assert_eq!(
        seen(&got),
        (
            200,
            JSON,
            r#"{"success":false,"message":"invalid characters in input name"}"#
        )
    );
    let l = get(&c, &list_url).await.json();
    assert_eq!(
        (field(&l, "name"), field(&l, "description")),
        (json!("pv"), json!("Solar roof"))
    );

    // input_controller.php calls set_fields only when `$_GET['inputid']` belongs to the
    // caller; any other id falls through to the controller's `false`.
    let got = get(&c, &set(a + 1000, r#"{"description":"x"}"#)).await;
    assert_eq!(seen(&got), (200, JSON, "false"));
}

#[tokio::test]
async fn input_delete_with_a_malformed_inputids() {
    let server = Server::start();
    let (userid, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let w = |p: &str| keyed(&server, p, &write);
    let got = get(&c, &w(&format!("/input/post?node=d&csv=1,2,3&time={T0}"))).await;
    assert_eq!(got.body, "ok");
    let ids = [
        input_id(&server, &read, "d", "1").await,
        input_id(&server, &read, "d", "2").await,
        input_id(&server, &read, "d", "3").await,
    ];

    // input_controller.php decodes `inputids` with json_decode and calls delete_multiple only
    // when the result is not loosely null: text that is not JSON, `[]`, `0`, `""`, `null`
    // and `false` all end in the controller's `false`, and nothing is deleted.
    for bad in ["abc", "[", "[]", "0", "\"\"", "\"0\"", "null", "false", ""] {
        let got = get(
            &c,
            &w(&format!("/input/delete.json?inputids={}", encode(bad))),
        )
        .await;
        assert_eq!(seen(&got), (200, JSON, "false"), "inputids={bad}");
    }
    assert_eq!(input_count(&server, &read).await, 3);

    // A number is not null, so Input::delete_multiple runs, finds nothing to walk (PHP warns,
    // which ynni never prints) and says "Inputs deleted". emoncms echoes `inputids` as
    // decoded; ynni echoes the ids it deleted (none), so the reply never tells another
    // user's ids from missing ones.
    let got = get(&c, &w("/input/delete.json?inputids=5")).await;
    let want =
        format!(r#"{{"success":true,"message":"Inputs deleted","userid":{userid},"inputids":[]}}"#);
    assert_eq!(seen(&got), (200, JSON, want.as_str()));
    assert_eq!(input_count(&server, &read).await, 3);

    // Input::belongs_to_user casts each id with (int): an id sent as text works.
    let got = get(
        &c,
        &w(&format!(
            "/input/delete.json?inputids={}",
            encode(&format!("[\"{}\"]", ids[0]))
        )),
    )
    .await;
    let want = format!(
        r#"{{"success":true,"message":"Inputs deleted","userid":{userid},"inputids":[{}]}}"#,
        ids[0]
    );
    assert_eq!(seen(&got), (200, JSON, want.as_str()));

    // input_controller.php tests `inputid` first (set and the caller's); an unknown one
    // leaves `inputids` to answer.
    let got = get(
        &c,
        &w(&format!(
            "/input/delete.json?inputid=99999&inputids=%5B{}%5D",
            ids[1]
        )),
    )
    .await;
    let want = format!(
        r#"{{"success":true,"message":"Inputs deleted","userid":{userid},"inputids":[{}]}}"#,
        ids[1]
    );
    assert_eq!(seen(&got), (200, JSON, want.as_str()));
    // ...and the caller's `inputid` wins over `inputids` (Input::delete's reply).
    let got = get(
        &c,
        &w(&format!(
            "/input/delete.json?inputid={0}&inputids=%5B{0}%5D",
            ids[2]
        )),
    )
    .await;
    let want = format!(
        r#"{{"success":true,"message":"Input deleted","userid":{userid},"inputid":{}}}"#,
        ids[2]
    );
    assert_eq!(seen(&got), (200, JSON, want.as_str()));
    assert_eq!(input_count(&server, &read).await, 0);

    // input_controller.php reads both from `$_GET`: sent in a form body they delete nothing.
    let got = get(&c, &w(&format!("/input/post?node=d&csv=1&time={T0}"))).await;
    assert_eq!(got.body, "ok");
    let again = input_id(&server, &read, "d", "1").await.to_string();
    for form in [
        [("inputids", format!("[{again}]"))],
        [("inputid", again.clone())],
    ] {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let got = post_form(&c, &w("/input/delete.json"), &form).await;
        assert_eq!(seen(&got), (200, JSON, "false"), "{form:?}");
    }
    assert_eq!(input_count(&server, &read).await, 1);
}

#[tokio::test]
async fn input_clean_counts_the_inputs_without_a_process_list() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_, bob_read, bob_write) = register(&server, "bob", "secret1").await;
    let c = script();
    let w = |p: &str| keyed(&server, p, &write);
    let post = |key: &str| {
        keyed(
            &server,
            &format!("/input/post?node=c&csv=1,2,3&time={T0}"),
            key,
        )
    };
    assert_eq!(get(&c, &post(&write)).await.body, "ok");
    assert_eq!(get(&c, &post(&bob_write)).await.body, "ok");
    let feed = get(
        &c,
        &w("/feed/create.json?tag=t&name=kept&engine=5&options=%7B%22interval%22%3A10%7D"),
    )
    .await
    .json()["feedid"]
        .as_i64()
        .expect("feed id");
    let kept = input_id(&server, &read, "c", "1").await;
    let got = post_form(
        &c,
        &w(&format!("/input/process/set?inputid={kept}")),
        &[(
            "processlist",
            &format!(r#"[{{"fn":"process__log_to_feed","args":["{feed}"]}}]"#),
        )],
    )
    .await;
    assert_eq!(got.json()["success"], true, "{}", got.body);

    // input_controller.php sets the text format for `clean` (whatever the suffix), and
    // input_model.php, Input::clean, deletes the caller's inputs whose processList is empty
    // and answers "Deleted $n inputs".
    let got = get(&c, &w("/input/clean")).await;
    assert_eq!(seen(&got), (200, TEXT, "Deleted 2 inputs"));
    let got = get(&c, &w("/input/clean.json")).await;
    assert_eq!(seen(&got), (200, TEXT, "Deleted 0 inputs"));
    assert_eq!(input_count(&server, &read).await, 1);
    assert_eq!(input_id(&server, &read, "c", "1").await, kept);
    // Only the caller's inputs.
    assert_eq!(input_count(&server, &bob_read).await, 3);
    // input_controller.php: `clean` is a write action; a read key falls through to `false`.
    let got = get(&c, &keyed(&server, "/input/clean", &read)).await;
    assert_eq!(seen(&got), (200, JSON, "false"));
    assert_eq!(input_count(&server, &read).await, 1);
}

#[tokio::test]
async fn input_description_setters() {
    let server = Server::start();
    let (userid, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let w = |p: &str| keyed(&server, p, &write);
    let got = get(&c, &w(&format!("/input/post?node=n&csv=1,2&time={T0}"))).await;
    assert_eq!(got.body, "ok");

    // input_model.php, Input::set_node_input_descriptions: every name is checked first,
    // with this message, and nothing changes.
    let got = get(
        &c,
        &w("/input/set-node-input-descriptions.json?node=n&names=ok,bad!"),
    )
    .await;
    assert_eq!(
        seen(&got),
        (
            200,
            JSON,
            r#"{"success":false,"message":"invalid characters in input description"}"#
        )
    );
    // input_controller.php acts only when `node` and `names` are both in `$_GET`.
    let got = get(&c, &w("/input/set-node-input-descriptions.json?node=n")).await;
    assert_eq!(seen(&got), (200, JSON, "false"));
    // Input::set_node_input_descriptions filters the node like a posted one; a node with no
    // inputs changes nothing and is still a success.
    let got = get(
        &c,
        &w("/input/set-node-input-descriptions.json?node=no%28de%29&names=x"),
    )
    .await;
    let want = format!(
        r#"{{"success":true,"message":"input descriptions updated","userid":{userid},"nodeid":"node","names":["x"]}}"#
    );
    assert_eq!(seen(&got), (200, JSON, want.as_str()));
    let got = get(
        &c,
        &w("/input/set-node-input-descriptions.json?node=n&names=First,Second"),
    )
    .await;
    assert_eq!(got.json()["success"], true, "{}", got.body);
    let list = get(&c, &keyed(&server, "/input/list.json", &read))
        .await
        .json();
    let description = |name: &str| {
        list.as_array()
            .and_then(|l| l.iter().find(|i| i["name"] == name))
            .map(|i| i["description"].clone())
            .unwrap_or_default()
    };
    assert_eq!(
        (description("1"), description("2")),
        (json!("First"), json!("Second"))
    );

    // input_model.php, Input::set_descriptions_multiple: anything but a non-empty array is
    // "Invalid input data".
    for inputs in ["[]", "nope", "5"] {
        let got = post_form(
            &c,
            &w("/input/set-descriptions.json"),
            &[("inputs", inputs)],
        )
        .await;
        assert_eq!(
            seen(&got),
            (
                200,
                JSON,
                r#"{"success":false,"message":"Invalid input data"}"#
            ),
            "{inputs}"
        );
    }
    // Results are a PHP array keyed by the (int) id; an item without one is key 0, which
    // json_encode prints as a list when it is the only key.
    let got = post_form(
        &c,
        &w("/input/set-descriptions.json"),
        &[("inputs", r#"[{"description":"x"}]"#)],
    )
    .await;
    assert_eq!(
        seen(&got),
        (
            200,
            JSON,
            r#"{"success":false,"results":[{"success":false,"message":"Invalid input id"}]}"#
        )
    );
    // ynni's own bound: one catalog statement per item, so at most 1,000 items a request.
    let many = format!(
        "[{}]",
        vec![r#"{"id":1,"description":"x"}"#; 1001].join(",")
    );
    let got = post_form(&c, &w("/input/set-descriptions.json"), &[("inputs", &many)]).await;
    assert_eq!(
        got.json(),
        json!({"success": false, "message": "Too many items in one request: at most 1000"})
    );
    let many = format!("[{}]", vec![r#"{"id":1,"tag":"x"}"#; 1001].join(","));
    let got = post_form(&c, &w("/feed/set-multiple.json"), &[("feeds", &many)]).await;
    assert_eq!(
        got.json(),
        json!({"success": false, "message": "Too many items in one request: at most 1000"})
    );
}

#[tokio::test]
async fn input_bulk_compressed_hex_that_is_not_zlib() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let c = script();
    let bulk = |q: &str| keyed(&server, &format!("/input/bulk{q}"), &write);
    let failure = |m: &str| format!("{{\"success\": false, \"message\": \"Format error, {m}\"}}");

    // input_methods.php, InputMethods::bulk: with `c`, hex2bin failing, or giving text PHP
    // takes for false (`30` is the text `0`), is "compressed hex not valid".
    for data in ["zz", "123", "30"] {
        let got = get(&c, &bulk(&format!("?c=1&data={data}"))).await;
        let want = failure("compressed hex not valid");
        assert_eq!(seen(&got), (200, TEXT, want.as_str()), "data={data}");
    }
    // Valid hex that is not a zlib stream: `@gzuncompress` gives false, json_decode reads
    // that as empty text, and the answer is the JSON error, not the hex one.
    let plain = hex(br#"[[0,"plain",1]]"#);
    let got = get(&c, &bulk(&format!("?c=1&data={plain}&time={T0}"))).await;
    let want = failure("json string supplied is not valid");
    assert_eq!(seen(&got), (200, TEXT, want.as_str()));
    // The same for zlib that inflates to text that is not JSON.
    let words = hex(&zlib("not json"));
    let got = get(&c, &bulk(&format!("?c=1&data={words}&time={T0}"))).await;
    assert_eq!(seen(&got), (200, TEXT, want.as_str()));
    assert_eq!(input_count(&server, &read).await, 0);

    // Valid hex of a zlib stream is stored; `Param::exists` is `isset`, so `c=0` asks for
    // the hex form just as `c=1` does.
    for (flag, node) in [("1", "zipped"), ("0", "zipped0")] {
        let data = hex(&zlib(&format!("[[0,\"{node}\",4]]")));
        let got = get(&c, &bulk(&format!("?c={flag}&data={data}&time={T0}"))).await;
        assert_eq!(seen(&got), (200, TEXT, "ok"), "c={flag}");
        assert_eq!(
            get(&c, &keyed(&server, &format!("/input/get/{node}/1"), &read))
                .await
                .json(),
            json!({"time": T0, "value": 4, "processList": ""})
        );
    }
}

#[tokio::test]
async fn input_bulk_past_the_node_limit_keeps_the_frames_before_it() {
    let server = Server::start();
    let (_, read, write) = register(&server, "alice", "secret1").await;
    let (_, bob_read, _) = register(&server, "bob", "secret1").await;
    let c = script();
    // input_methods.php, bulk: frames are handed to process_node one by one, and the first
    // error (validate_access's node limit, 32 in emoncms's default settings) is returned at
    // once: the 32 nodes before it are created and hold their values, the frame naming the
    // 33rd node and every frame after it (even for a known node) are not processed. The
    // controller wraps the message as it does every post failure (input_controller.php).
    let mut frames: Vec<String> = (1..=33).map(|n| format!("[{n},\"n{n}\",{n}]")).collect();
    frames.push("[40,\"n1\",99]".into());
    let data = format!("[{}]", frames.join(","));
    let path = format!("/input/bulk.json?time={T0}&data={}", encode(&data));
    let r = get(&c, &keyed(&server, &path, &write)).await;
    assert_eq!(
        seen(&r),
        (
            200,
            TEXT,
            "{\"success\": false, \"message\": \"Error: Reached the maximal allowed number of different NodeIds, limit is 32. Node 'n33' was ignored.\"}"
        )
    );
    let inputs = get(&c, &keyed(&server, "/input/get.json", &read))
        .await
        .json();
    let nodes = inputs.as_object().expect("nodes");
    assert_eq!(nodes.len(), 32, "{inputs}");
    assert!(!nodes.contains_key("n33"));
    for n in 1..=32 {
        let input = &inputs[format!("n{n}")]["1"];
        assert_eq!(input["value"], json!(n), "n{n}: {inputs}");
        assert_eq!(input["time"], json!(T0 + n), "n{n}: {inputs}");
    }
    // Another user's inputs are untouched, and the limit is per user.
    assert_eq!(input_count(&server, &bob_read).await, 0);
    // A later post to a known node is accepted; a new node is still refused.
    let post = |node: &str| {
        keyed(
            &server,
            &format!("/input/post.json?node={node}&csv=5"),
            &write,
        )
    };
    assert_eq!(seen(&get(&c, &post("n1")).await), (200, TEXT, "ok"));
    let r = get(&c, &post("n34")).await;
    assert_eq!(
        seen(&r),
        (
            200,
            TEXT,
            "{\"success\": false, \"message\": \"Error: Reached the maximal allowed number of different NodeIds, limit is 32. Node 'n34' was ignored.\"}"
        )
    );
}

/// emoncms's encrypted input is not built: said so with 501, not answered as a bad key.
#[tokio::test]
async fn encrypted_input_is_answered_not_implemented() {
    let server = Server::start();
    let (userid, _, _) = register(&server, "alice", "secret1").await;
    for (path, ct) in [("/input/post", "aes128cbc"), ("/input/bulk", "aes128cbcgz")] {
        let r = send(
            script()
                .post(server.url(path))
                .header("content-type", ct)
                .header("authorization", format!("{userid}:0123abcd"))
                .body("c2VjcmV0"),
        )
        .await;
        assert_eq!(r.status, 501, "{path}: {r:?}");
        assert!(
            r.body
                .contains("Not implemented in ynni yet: encrypted input"),
            "{}",
            r.body
        );
    }
}
