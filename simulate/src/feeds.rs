//! `--log-to-feeds`: before the run every simulated input gets a fixed-interval feed and a
//! "Log to feed" step, through the HTTP API as a user would set it up; after the run the
//! stored points are counted, so a benchmark proves that nothing acknowledged was lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use serde_json::Value;

use super::{Plan, payload};
use crate::SimulateError;

/// How many API calls run at once during setup and counting.
const PARALLEL: usize = 32;

/// For each device (by plan index): its account's key and the feed ids of its inputs.
pub type FeedMap = Vec<(String, Vec<u32>)>;

pub struct Stored {
    pub feeds: usize,
    pub points: u64,
    pub expected: u64,
    /// Summed per feed: points a feed lacks (never offset by another feed's extra ones).
    pub missing: u64,
}

pub async fn setup(
    api: &str,
    plans: &[Plan],
    first_time: f64,
    interval: u32,
) -> Result<FeedMap, SimulateError> {
    let client = client()?;
    let api = api.trim_end_matches('/');
    // One reading per device creates its inputs (before any feed exists, so it is not logged).
    let creates = plans.iter().map(|p| {
        let zeros = vec![0.0; p.names.len()];
        let req = client.get(format!("{api}/input/post")).query(&[
            ("node", p.node.as_str()),
            ("time", &format!("{first_time}")),
            ("fulljson", &payload::fulljson(&p.names, &zeros)),
            ("apikey", p.account.apikey_write.as_str()),
        ]);
        async move { send_settled(req).await?.error_for_status().map(|_| ()) }
    });
    for r in futures_util::stream::iter(creates)
        .buffer_unordered(PARALLEL)
        .collect::<Vec<_>>()
        .await
    {
        r.map_err(|source| SimulateError::Http {
            step: "creating inputs",
            source,
        })?;
    }
    // Input ids per account.
    let mut ids: HashMap<String, HashMap<(String, String), i64>> = HashMap::new();
    for p in plans {
        if ids.contains_key(&p.account.apikey_write) {
            continue;
        }
        let list: Value = send_settled(
            client
                .get(format!("{api}/input/list.json"))
                .query(&[("apikey", p.account.apikey_write.as_str())]),
        )
        .await?
        .json()
        .await
        .map_err(|source| SimulateError::Http {
            step: "input/list",
            source,
        })?;
        let mut map = HashMap::new();
        for i in list.as_array().into_iter().flatten() {
            let (Some(node), Some(name), Some(id)) = (
                i["nodeid"].as_str(),
                i["name"].as_str(),
                i["id"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .or(i["id"].as_i64()),
            ) else {
                continue;
            };
            map.insert((node.to_string(), name.to_string()), id);
        }
        ids.insert(p.account.apikey_write.clone(), map);
    }
    let jobs: Vec<(usize, usize, String, i64, String, String)> = plans
        .iter()
        .flat_map(|p| {
            let inputs = &ids[&p.account.apikey_write];
            p.names.iter().enumerate().filter_map(move |(k, name)| {
                let id = *inputs.get(&(p.node.clone(), name.clone()))?;
                Some((
                    p.index,
                    k,
                    p.account.apikey_write.clone(),
                    id,
                    p.node.clone(),
                    name.clone(),
                ))
            })
        })
        .collect();
    if jobs.len() != plans.iter().map(|p| p.names.len()).sum::<usize>() {
        return Err(SimulateError::Server(
            "some simulated inputs were not created (a read apikey, or more devices on one account than the server's node limit?)".into(),
        ));
    }
    let made = jobs
        .into_iter()
        .map(|(device, k, key, inputid, node, name)| {
            let client = client.clone();
            async move {
                let options = format!("{{\"interval\":{interval}}}");
                let created: Value = send_settled(
                    client.get(format!("{api}/feed/create.json")).query(&[
                        ("tag", node.as_str()),
                        ("name", name.as_str()),
                        ("engine", "5"),
                        ("options", options.as_str()),
                        ("apikey", key.as_str()),
                    ]),
                )
                .await?
                    .json()
                    .await?;
                let Some(feed) = created["feedid"].as_u64() else {
                    return Err(SimulateError::Server(format!(
                        "feed/create for {node}:{name}: {created} (--log-to-feeds needs accounts without these feeds: a new account, or delete them)"
                    )));
                };
                let list = format!("[{{\"fn\":\"process__log_to_feed\",\"args\":[\"{feed}\"]}}]");
                let set: Value = send_settled(
                    client
                        .post(format!("{api}/input/process/set.json"))
                        .query(&[
                            ("inputid", inputid.to_string().as_str()),
                            ("apikey", key.as_str()),
                        ])
                        .form(&[("processlist", list.as_str())]),
                )
                .await?
                    .json()
                    .await?;
                if set["success"] != true {
                    return Err(SimulateError::Server(format!(
                        "input/process/set for {node}:{name}: {set}"
                    )));
                }
                Ok::<_, SimulateError>((device, k, feed as u32))
            }
        });
    let mut map: FeedMap = plans
        .iter()
        .map(|p| (p.account.apikey_write.clone(), vec![0; p.names.len()]))
        .collect();
    for r in futures_util::stream::iter(made)
        .buffer_unordered(PARALLEL)
        .collect::<Vec<_>>()
        .await
    {
        let (device, k, feed) = r?;
        map[device].1[k] = feed;
    }
    Ok(map)
}

/// Counts the points each feed holds from the run's first reading to its device's last, and
/// compares feed by feed (a surplus in one feed cannot hide a loss in another). Over MQTT the
/// acknowledgement comes before the value is stored, so a short count is taken again until it
/// is complete or stops growing.
pub async fn count_stored(
    api: &str,
    map: &FeedMap,
    ticks: &[AtomicU64],
    start: f64,
    interval: u32,
) -> Result<Stored, SimulateError> {
    let expected: Vec<u64> = (0..map.len())
        .map(|d| ticks[d].load(Ordering::Relaxed))
        .collect();
    let mut last_points = None;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let per_feed = count_once(api, map, &expected, start, interval).await?;
        let stored = Stored {
            feeds: per_feed.len(),
            points: per_feed.iter().map(|(got, _)| got).sum(),
            expected: per_feed.iter().map(|(_, want)| want).sum(),
            missing: per_feed
                .iter()
                .map(|(got, want)| want.saturating_sub(*got))
                .sum(),
        };
        if stored.missing == 0
            || last_points == Some(stored.points)
            || std::time::Instant::now() > deadline
        {
            return Ok(stored);
        }
        last_points = Some(stored.points);
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// (stored, expected) per feed.
async fn count_once(
    api: &str,
    map: &FeedMap,
    expected: &[u64],
    start: f64,
    interval: u32,
) -> Result<Vec<(u64, u64)>, SimulateError> {
    let client = client()?;
    let api = api.trim_end_matches('/');
    // feed/data answers at most 20,000 points per request.
    const CHUNK: u64 = 10_000;
    let mut jobs = Vec::new();
    for (device, (key, feeds)) in map.iter().enumerate() {
        let n = expected[device];
        for (slot, &feed) in feeds.iter().enumerate() {
            let mut from = 0;
            while from < n {
                let to = (from + CHUNK).min(n);
                jobs.push((device, slot, key.clone(), feed, from, to));
                from = to;
            }
        }
    }
    let counted = jobs.into_iter().map(|(device, slot, key, feed, from, to)| {
        let client = client.clone();
        async move {
            // Readings from..to-1 sit at start + k·interval; the end is just before reading
            // `to`, so a one-reading range still has end > start.
            let s = start as i64 + (from * u64::from(interval)) as i64;
            let e = start as i64 + (to * u64::from(interval)) as i64 - 1;
            let data: Value = send_settled(client.get(format!("{api}/feed/data.json")).query(&[
                ("id", feed.to_string()),
                ("start", (s * 1000).to_string()),
                ("end", (e * 1000).to_string()),
                ("interval", interval.to_string()),
                ("skipmissing", "1".to_string()),
                ("apikey", key),
            ]))
            .await?
            .json()
            .await?;
            let Some(points) = data.as_array() else {
                return Err(SimulateError::Server(format!(
                    "feed/data for feed {feed}: {data}"
                )));
            };
            let got = points.iter().filter(|p| !p[1].is_null()).count() as u64;
            Ok::<_, SimulateError>((device, slot, got))
        }
    });
    let mut per_feed: Vec<Vec<u64>> = map.iter().map(|(_, f)| vec![0; f.len()]).collect();
    for r in futures_util::stream::iter(counted)
        .buffer_unordered(PARALLEL)
        .collect::<Vec<_>>()
        .await
    {
        let (device, slot, got) = r?;
        per_feed[device][slot] += got;
    }
    Ok(per_feed
        .into_iter()
        .enumerate()
        .flat_map(|(device, feeds)| feeds.into_iter().map(move |got| (got, expected[device])))
        .collect())
}

/// How long setting up and counting ask again while a server answers 503: a cluster node says
/// so while an account's shard settles on its owner ("retry shortly"), and nothing was done.
const SETTLING: std::time::Duration = std::time::Duration::from_secs(30);
/// The pause between those attempts.
const SETTLING_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// Sends `req`, and again after [`SETTLING_PAUSE`] while the answer is 503, for at most
/// [`SETTLING`]; then the answer as it is. Only a 503 is retried: after a failed connection
/// a feed may have been created, and asking again would create a second.
async fn send_settled(req: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    let deadline = std::time::Instant::now() + SETTLING;
    loop {
        let Some(again) = req.try_clone() else {
            return req.send().await;
        };
        let answer = again.send().await?;
        if answer.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE
            || std::time::Instant::now() >= deadline
        {
            return Ok(answer);
        }
        tokio::time::sleep(SETTLING_PAUSE).await;
    }
}

fn client() -> Result<reqwest::Client, SimulateError> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|source| SimulateError::Http {
            step: "HTTP client",
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers its first `busy` requests 503 and the rest 200 `ok`; returns its
    /// address and how many requests it has had.
    async fn server(busy: usize) -> (std::net::SocketAddr, std::sync::Arc<AtomicU64>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(AtomicU64::new(0));
        let count = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if conn.read_exact(&mut byte).await.is_err() {
                        break;
                    }
                    head.push(byte[0]);
                }
                let n = count.fetch_add(1, Ordering::SeqCst) as usize;
                let reply: &[u8] = if n < busy {
                    b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
                };
                let _ = conn.write_all(reply).await;
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn a_503_is_asked_again_and_other_answers_are_not() {
        let client = client().unwrap();
        let (addr, seen) = server(2).await;
        let r = send_settled(client.get(format!("http://{addr}/x")))
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        assert_eq!(r.text().await.unwrap(), "ok");
        assert_eq!(seen.load(Ordering::SeqCst), 3);
        // An answer that is not 503 is taken as it is, first time.
        let (addr, seen) = server(0).await;
        let r = send_settled(client.get(format!("http://{addr}/x")))
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }
}
