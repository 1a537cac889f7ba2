//! Downloads (302 without the bearer token, Range resume) and uploads (simple PUT, upload
//! sessions with gaps and failures) against in-test servers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use backhome_graph::{Call, Client, ConflictBehavior, Error, UPLOAD_FRAGMENT_UNIT, UploadOptions};
use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use serde_json::json;

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// A download host that breaks the first answer after `cut` bytes and serves ranges after that.
async fn download_host(data: Vec<u8>, cut: usize, ranges: bool) -> Server {
    let n = Arc::new(AtomicUsize::new(0));
    serve(move |req| {
        let data = data.clone();
        let n = n.fetch_add(1, Ordering::SeqCst);
        async move {
            let from: usize = req
                .header("range")
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.trim_end_matches('-').parse().ok())
                .unwrap_or(0);
            if n == 0 {
                return Reply::Truncated {
                    status: 200,
                    headers: vec![],
                    body: data,
                    send: cut,
                };
            }
            if from > 0 && ranges {
                let total = data.len();
                return Reply::raw(206, data[from..].to_vec()).header(
                    "Content-Range",
                    &format!("bytes {from}-{}/{total}", total - 1),
                );
            }
            Reply::raw(200, data)
        }
    })
    .await
}

async fn graph_redirecting_to(target: String) -> Server {
    serve(move |req| {
        let target = target.clone();
        async move {
            if is_token(&req) {
                token_reply(&["Files.Read.All"], 3600)
            } else {
                Reply::status(302).header("Location", &target)
            }
        }
    })
    .await
}

#[tokio::test]
async fn download_follows_redirect_without_token_and_resumes_with_range() {
    let data = content(200_000);
    let host = download_host(data.clone(), 70_000, true).await;
    let graph = graph_redirecting_to(format!("{}/download/abc?tempauth=secret", host.base)).await;
    let client = client(&graph);
    let download = client
        .download(Call::get("/drives/d1/items/i1/content").resource("d1"))
        .await
        .unwrap();
    assert_eq!(download.size, Some(200_000));
    let got = download.into_bytes().await.unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "content differs after resume");
    let reqs = host.requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(
            r.header("authorization"),
            None,
            "no bearer token to the download host"
        );
        assert!(r.target.starts_with("/download/abc?tempauth=secret"));
    }
    assert_eq!(reqs[0].header("range"), None);
    let resumed_at: usize = reqs[1]
        .header("range")
        .unwrap()
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(
        resumed_at > 0 && resumed_at <= 70_000,
        "resumed at {resumed_at}"
    );
    assert!(
        graph.matching("/v1.0/drives/d1/items/i1/content")[0]
            .header("authorization")
            .is_some()
    );
    let stats = client.stats();
    assert!(stats.bytes_received >= 200_000);
    assert_eq!(stats.in_flight, 0);
}

#[tokio::test]
async fn download_resumes_when_the_host_ignores_ranges() {
    let data = content(50_000);
    let host = download_host(data.clone(), 20_000, false).await;
    let graph = graph_redirecting_to(format!("{}/dl", host.base)).await;
    let got = client(&graph)
        .download(Call::get("/drives/d/items/i/content"))
        .await
        .unwrap()
        .into_bytes()
        .await
        .unwrap();
    assert!(got == data, "the already received prefix is skipped");
}

#[tokio::test]
async fn mime_streams_from_graph_and_refuses_unsafe_resume() {
    let mime = b"From: a@contoso.com\r\nSubject: hi\r\n\r\nbody\r\n".repeat(2000);
    let m2 = mime.clone();
    let n = Arc::new(AtomicUsize::new(0));
    let graph = serve(move |req| {
        let mime = m2.clone();
        let n = n.clone();
        async move {
            if is_token(&req) {
                return token_reply(&["Mail.Read"], 3600);
            }
            if req.path().ends_with("/m1/$value") {
                return Reply::raw(200, mime).header("Content-Type", "message/rfc822");
            }
            // m2: breaks, and Graph does not serve ranges of generated MIME.
            if n.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::Truncated {
                    status: 200,
                    headers: vec![],
                    body: mime,
                    send: 1000,
                }
            } else {
                Reply::raw(200, mime)
            }
        }
    })
    .await;
    let client = client(&graph);
    let mut d = client
        .download(Call::get("/users/u1/messages/m1/$value").resource("u1"))
        .await
        .unwrap();
    assert_eq!(d.content_type.as_deref(), Some("message/rfc822"));
    let mut got = Vec::new();
    while let Some(chunk) = d.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert!(got == mime);
    let req = &graph.matching("/m1/$value")[0];
    assert_eq!(req.header("prefer"), Some("IdType=\"ImmutableId\""));

    let e = client
        .download(Call::get("/users/u1/messages/m2/$value"))
        .await
        .unwrap()
        .into_bytes()
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Interrupted { received: 1000, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("download it again"));
}

#[tokio::test]
async fn small_upload_sets_conflict_behaviour_and_times() {
    let graph = serve(|req| async move {
        if is_token(&req) {
            return token_reply(&["Files.ReadWrite.All"], 3600);
        }
        if req.method == "PUT" {
            return Reply::json(
                201,
                &json!({"id": "new1", "name": "a b.txt", "size": req.body.len()}),
            );
        }
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        Reply::json(
            200,
            &json!({"id": "new1", "name": "a b.txt", "fileSystemInfo": body["fileSystemInfo"]}),
        )
    })
    .await;
    let client = client(&graph);
    let modified = time::macros::datetime!(2020-05-06 07:08:09 UTC);
    let options = UploadOptions {
        conflict: ConflictBehavior::Rename,
        modified: Some(modified),
        ..UploadOptions::default()
    };
    let item = client
        .upload(
            "d1",
            "parent",
            "a b.txt",
            &Bytes::from_static(b"hello"),
            &options,
        )
        .await
        .unwrap();
    assert_eq!(item.id, "new1");
    assert_eq!(
        item.file_system_info.unwrap().last_modified_date_time,
        Some(modified)
    );
    let reqs = graph
        .requests()
        .into_iter()
        .filter(|r| !is_token(r))
        .collect::<Vec<_>>();
    assert_eq!(reqs[0].method, "PUT");
    assert_eq!(
        reqs[0].target,
        "/v1.0/drives/d1/items/parent:/a%20b.txt:/content?@microsoft.graph.conflictBehavior=rename"
    );
    assert_eq!(reqs[0].body, b"hello");
    assert_eq!(reqs[1].method, "PATCH");
    assert_eq!(reqs[1].path(), "/v1.0/drives/d1/items/new1");
}

/// An upload host that keeps received ranges, fails one fragment, and "loses" another.
struct Session {
    data: Mutex<BTreeMap<u64, Vec<u8>>>,
    puts: AtomicUsize,
    total: u64,
}

impl Session {
    fn missing(&self) -> Vec<String> {
        let data = self.data.lock().unwrap();
        let mut missing = Vec::new();
        let mut pos = 0u64;
        for (start, bytes) in data.iter() {
            if *start > pos {
                missing.push(format!("{pos}-{}", start - 1));
            }
            pos = pos.max(start + bytes.len() as u64);
        }
        if pos < self.total {
            missing.push(format!("{pos}-"));
        }
        missing
    }
}

#[tokio::test]
async fn upload_session_with_failures_and_gaps() {
    let unit = UPLOAD_FRAGMENT_UNIT;
    let data = content(4 * unit + 1234);
    let total = data.len() as u64;
    let session = Arc::new(Session {
        data: Mutex::new(BTreeMap::new()),
        puts: AtomicUsize::new(0),
        total,
    });
    let s2 = session.clone();
    let upload_host = serve(move |req| {
        let s = s2.clone();
        async move {
            assert_eq!(req.header("authorization"), None, "no bearer token on upload fragments");
            if req.method == "GET" {
                return Reply::json(200, &json!({"expirationDateTime": "2030-01-01T00:00:00Z", "nextExpectedRanges": s.missing()}));
            }
            let range = req.header("content-range").unwrap().trim_start_matches("bytes ").to_owned();
            let (span, announced) = range.split_once('/').unwrap();
            assert_eq!(announced.parse::<u64>().unwrap(), s.total);
            let (a, b) = span.split_once('-').unwrap();
            let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
            assert_eq!(b - a + 1, req.body.len() as u64);
            if b + 1 < s.total {
                assert_eq!(req.body.len() % (320 * 1024), 0, "fragments are multiples of 320 KiB");
            }
            let n = s.puts.fetch_add(1, Ordering::SeqCst);
            if n == 1 {
                return Reply::raw(503, "try later");
            }
            if n == 2 {
                return Reply::Reset;
            }
            s.data.lock().unwrap().insert(a, req.body.clone());
            if n == 4 {
                // Pretend the first fragment was lost: a gap at the start.
                s.data.lock().unwrap().remove(&0);
            }
            let missing = s.missing();
            if missing.is_empty() {
                Reply::json(201, &json!({"id": "big1", "name": "big.bin", "size": s.total}))
            } else {
                Reply::json(202, &json!({"expirationDateTime": "2030-01-01T00:00:00Z", "nextExpectedRanges": missing}))
            }
        }
    })
    .await;
    let upload_url = format!("{}/up/session1?tempauth=x", upload_host.base);
    let graph = serve(move |req| {
        let upload_url = upload_url.clone();
        async move {
            if is_token(&req) {
                return token_reply(&["Files.ReadWrite.All"], 3600);
            }
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            assert_eq!(body["item"]["@microsoft.graph.conflictBehavior"], "replace");
            assert_eq!(body["item"]["fileSystemInfo"]["lastModifiedDateTime"], "2021-02-03T04:05:06Z");
            Reply::json(200, &json!({"uploadUrl": upload_url, "expirationDateTime": "2030-01-01T00:00:00Z", "nextExpectedRanges": ["0-"]}))
        }
    })
    .await;
    let mut config = config(&graph);
    config.upload_chunk_size = unit + 1000; // rounded down to one unit
    let client = Client::new(config, credential()).unwrap();
    let options = UploadOptions {
        modified: Some(time::macros::datetime!(2021-02-03 04:05:06 UTC)),
        ..UploadOptions::default()
    };
    let item = client
        .upload_large(
            "d1",
            "root",
            "big.bin",
            &Bytes::from(data.clone()),
            &options,
        )
        .await
        .unwrap();
    assert_eq!(item.id, "big1");
    let stored = session.data.lock().unwrap();
    let mut assembled = Vec::new();
    for (start, bytes) in stored.iter() {
        assert_eq!(*start as usize, assembled.len(), "no overlap or hole");
        assembled.extend_from_slice(bytes);
    }
    assert!(assembled == data, "the server holds exactly the file");
    assert_eq!(
        graph.matching("createUploadSession")[0].path(),
        "/v1.0/drives/d1/items/root:/big.bin:/createUploadSession"
    );
}

#[tokio::test]
async fn lost_upload_session_is_reported() {
    let upload_host = serve(|_| async {
        Reply::json(
            404,
            &json!({"error": {"code": "itemNotFound", "message": "session gone"}}),
        )
    })
    .await;
    let url = format!("{}/up/x", upload_host.base);
    let graph = serve(move |req| {
        let url = url.clone();
        async move {
            if is_token(&req) {
                return token_reply(&["Files.ReadWrite.All"], 3600);
            }
            Reply::json(200, &json!({"uploadUrl": url}))
        }
    })
    .await;
    let e = client(&graph)
        .upload_large(
            "d",
            "root",
            "x.bin",
            &Bytes::from(content(5 * 1024 * 1024)),
            &UploadOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UploadSessionLost), "{e:?}");
}

#[tokio::test]
async fn stalled_bodies_and_slow_answers_time_out_and_recover() {
    let data = content(100_000);
    let d2 = data.clone();
    let n = Arc::new(AtomicUsize::new(0));
    let host = serve(move |req| {
        let data = d2.clone();
        let n = n.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                return Reply::Stall {
                    body: data,
                    send: 30_000,
                    silence: std::time::Duration::from_secs(5),
                };
            }
            let from: usize = req
                .header("range")
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.trim_end_matches('-').parse().ok())
                .unwrap_or(0);
            let total = data.len();
            Reply::raw(206, data[from..].to_vec()).header(
                "Content-Range",
                &format!("bytes {from}-{}/{total}", total - 1),
            )
        }
    })
    .await;
    let target = format!("{}/dl", host.base);
    let slow = Arc::new(AtomicUsize::new(0));
    let graph = serve(move |req| {
        let target = target.clone();
        let slow = slow.clone();
        async move {
            if is_token(&req) {
                return token_reply(&["Files.Read.All"], 3600);
            }
            if slow.fetch_add(1, Ordering::SeqCst) == 0 {
                // First answer arrives after the request timeout.
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            }
            Reply::status(302).header("Location", &target)
        }
    })
    .await;
    let mut config = config(&graph);
    config.timeouts.stall = std::time::Duration::from_millis(300);
    config.timeouts.request = std::time::Duration::from_millis(500);
    let client = Client::new(config, credential()).unwrap();
    let start = std::time::Instant::now();
    let got = client
        .download(Call::get("/drives/d/items/i/content"))
        .await
        .unwrap()
        .into_bytes()
        .await
        .unwrap();
    assert!(got == data);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(3),
        "did not wait for the stalled server: {:?}",
        start.elapsed()
    );
    assert_eq!(
        graph.matching("/content").len(),
        2,
        "the slow answer was abandoned and asked again"
    );
    assert_eq!(host.requests()[1].header("range"), Some("bytes=30000-"));
}

#[tokio::test]
async fn expired_download_url_is_renewed_through_graph() {
    let data = content(80_000);
    let d2 = data.clone();
    let host = serve(move |req| {
        let data = d2.clone();
        async move {
            let from: usize = req
                .header("range")
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.trim_end_matches('-').parse().ok())
                .unwrap_or(0);
            if req.target.starts_with("/old") {
                if from == 0 {
                    return Reply::Truncated {
                        status: 200,
                        headers: vec![],
                        body: data,
                        send: 25_000,
                    };
                }
                // The pre-authenticated URL expired meanwhile.
                return Reply::json(
                    401,
                    &json!({"error": {"code": "unauthenticated", "message": "expired"}}),
                );
            }
            let total = data.len();
            Reply::raw(206, data[from..].to_vec()).header(
                "Content-Range",
                &format!("bytes {from}-{}/{total}", total - 1),
            )
        }
    })
    .await;
    let base = host.base.clone();
    let n = Arc::new(AtomicUsize::new(0));
    let graph = serve(move |req| {
        let base = base.clone();
        let n = n.clone();
        async move {
            if is_token(&req) {
                return token_reply(&["Files.Read.All"], 3600);
            }
            let path = if n.fetch_add(1, Ordering::SeqCst) == 0 {
                "old"
            } else {
                "fresh"
            };
            Reply::status(302).header("Location", &format!("{base}/{path}?tempauth=t"))
        }
    })
    .await;
    let got = client(&graph)
        .download(Call::get("/drives/d/items/i/content"))
        .await
        .unwrap()
        .into_bytes()
        .await
        .unwrap();
    assert!(got == data);
    assert_eq!(
        graph.matching("/content").len(),
        2,
        "a fresh URL was asked for"
    );
    let fresh = host.matching("/fresh");
    assert_eq!(fresh.len(), 1);
    assert!(fresh[0].header("range").is_some_and(|r| r != "bytes=0-"));
    assert!(
        host.requests()
            .iter()
            .all(|r| r.header("authorization").is_none())
    );
}
