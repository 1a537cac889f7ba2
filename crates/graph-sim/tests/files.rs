//! Files: drives, delta (token=latest, deleted facet), downloads with ranges, versions, simple
//! uploads and upload sessions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use graph_sim::Profile;
use serde_json::{Value, json};

async fn drive_id(h: &common::Harness) -> String {
    let upn = h.first_user().await;
    let (s, d) = h.get(&format!("/users/{upn}/drive")).await;
    assert_eq!(s, 200, "{d}");
    d["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn delta_rounds_latest_and_deleted_facet() {
    let h = common::start(Profile::Tiny).await;
    let d = drive_id(&h).await;
    let (items, delta, _) = h
        .delta_round(
            &format!("/drives/{d}/root/delta"),
            &[("Prefer", "odata.maxpagesize=4")],
        )
        .await;
    assert!(
        items.iter().any(|i| i.get("root").is_some())
            && items.iter().any(|i| i.get("file").is_some())
    );
    assert!(delta.contains("token="), "{delta}");
    let mut m = Vec::new();
    common::shape_mismatches(
        &common::example("driveitem-delta")["value"][1],
        items.iter().find(|i| i.get("file").is_some()).unwrap(),
        "",
        &mut m,
    );
    assert!(m.is_empty(), "{m:?}");
    let (s, latest) = h.get(&format!("/drives/{d}/root/delta?token=latest")).await;
    assert_eq!(s, 200);
    assert!(latest["value"].as_array().unwrap().is_empty());
    let latest_link = latest["@odata.deltaLink"].as_str().unwrap().to_string();

    let file = items.iter().find(|i| i.get("file").is_some()).unwrap();
    let added = h.mutate(json!({"op": "add_file", "drive": d, "parent": "root", "name": "new ✓.bin", "size": 5000})).await;
    h.mutate(json!({"op": "delete_file", "drive": d, "id": file["id"]}))
        .await;
    for link in [delta, latest_link] {
        let (round, _, _) = h.delta_round(&link, &[]).await;
        let deleted = round
            .iter()
            .find(|i| i["id"] == file["id"])
            .expect("deleted item reported");
        assert!(deleted.get("deleted").is_some(), "{deleted}");
        assert!(
            round
                .iter()
                .any(|i| i["id"] == added["id"] && i.get("file").is_some())
        );
    }
    // Expired log → 410 with a Location.
    let (_, fresh) = h.get(&format!("/drives/{d}/root/delta?token=latest")).await;
    h.mutate(json!({"op": "expire_delta", "drive": d})).await;
    let (s, e) = h.get(fresh["@odata.deltaLink"].as_str().unwrap()).await;
    assert_eq!(s, 410, "{e}");
    assert_eq!(e["error"]["code"], "resyncRequired");
    // A new round without a token has nothing to expire: it enumerates the drive.
    let (s, again) = h.get(&format!("/drives/{d}/root/delta")).await;
    assert_eq!(s, 200, "{again}");
    assert!(!again["value"].as_array().unwrap().is_empty());
    h.sim.stop().await;
}

#[tokio::test]
async fn download_redirect_and_ranges() {
    let h = common::start(Profile::Tiny).await;
    let d = drive_id(&h).await;
    let (items, _, _) = h.delta_round(&format!("/drives/{d}/root/delta"), &[]).await;
    let file = items
        .iter()
        .filter(|i| i.get("file").is_some())
        .max_by_key(|i| i["size"].as_u64().unwrap())
        .unwrap();
    let size = file["size"].as_u64().unwrap();
    let r = h
        .http
        .get(h.url(&format!(
            "/drives/{d}/items/{}/content",
            file["id"].as_str().unwrap()
        )))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    // No bearer token needed.
    let full = h.http.get(&location).send().await.unwrap();
    assert_eq!(full.status().as_u16(), 200);
    let body = full.bytes().await.unwrap();
    assert_eq!(body.len() as u64, size);
    let again = h
        .http
        .get(&location)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body, again, "content is deterministic");
    let r = h
        .http
        .get(&location)
        .header("Range", "bytes=10-99")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes 10-99/{size}")
    );
    assert_eq!(&r.bytes().await.unwrap()[..], &body[10..100]);
    let r = h
        .http
        .get(&location)
        .header("Range", format!("bytes={}-", size + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 416);
    let forged = format!("{}x", &location[..location.len() - 1]);
    assert_ne!(
        h.http.get(&forged).send().await.unwrap().status().as_u16(),
        200
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn uploads_versions_and_conflicts() {
    let h = common::start(Profile::Tiny).await;
    let d = drive_id(&h).await;
    let put = |name: &str, body: Vec<u8>, conflict: &str| {
        h.http
            .put(h.url(&format!("/drives/{d}/items/root:/{name}:/content?@microsoft.graph.conflictBehavior={conflict}")))
            .bearer_auth(&h.token)
            .body(body)
            .send()
    };
    let r = put("Restored%20file.txt", b"first".to_vec(), "replace")
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let item: Value = r.json().await.unwrap();
    assert_eq!(item["name"], "Restored file.txt");
    let r = put("Restored%20file.txt", b"second version".to_vec(), "replace")
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = put("Restored%20file.txt", b"x".to_vec(), "fail")
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let r = put("Restored%20file.txt", b"x".to_vec(), "rename")
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let renamed: Value = r.json().await.unwrap();
    assert_ne!(renamed["name"], "Restored file.txt");
    let (s, versions) = h
        .get(&format!(
            "/drives/{d}/items/{}/versions",
            item["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(versions["value"].as_array().unwrap().len(), 2);
    assert_eq!(versions["value"][0]["id"], "2.0");
    let mut m = Vec::new();
    common::shape_mismatches(
        &common::example("driveitem-versions")["value"][0],
        &versions["value"][0],
        "",
        &mut m,
    );
    assert!(m.is_empty(), "{m:?}");
    let r = put("big.bin", vec![0u8; 4 * 1024 * 1024 + 1], "replace")
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);

    // Upload session: 320 KiB multiples, nextExpectedRanges, fileSystemInfo, conflicts.
    let total = 327_680 * 2 + 1000;
    let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let (s, sess) = h
        .send(reqwest::Method::POST, &format!("/drives/{d}/items/root:/Large%20upload.bin:/createUploadSession"), Some(json!({"item": {
            "@microsoft.graph.conflictBehavior": "fail", "fileSystemInfo": {"createdDateTime": "2020-01-02T03:04:05Z", "lastModifiedDateTime": "2021-01-02T03:04:05Z"}}})))
        .await;
    assert_eq!(s, 200, "{sess}");
    let mut m = Vec::new();
    common::shape_mismatches(&common::example("uploadsession"), &sess, "", &mut m);
    assert!(m.is_empty(), "{m:?}");
    let up = sess["uploadUrl"].as_str().unwrap();
    let frag = |a: usize, b: usize| {
        h.http
            .put(up)
            .header("Content-Range", format!("bytes {a}-{}/{total}", b - 1))
            .body(data[a..b].to_vec())
            .send()
    };
    let r = frag(0, 1000).await.unwrap();
    assert_eq!(r.status().as_u16(), 416, "not a 320 KiB multiple");
    let r = frag(0, 327_680).await.unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["nextExpectedRanges"][0], "327680-");
    let r = frag(0, 327_680).await.unwrap();
    assert_eq!(r.status().as_u16(), 416, "overlap");
    let r = h
        .http
        .put(up)
        .bearer_auth(&h.token)
        .header("Content-Range", format!("bytes 327680-655359/{total}"))
        .body(data[327_680..655_360].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "Authorization on the upload URL");
    let r = frag(327_680, 655_360).await.unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let r = frag(655_360, total).await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["size"].as_u64().unwrap(), total as u64);
    assert_eq!(
        done["fileSystemInfo"]["lastModifiedDateTime"],
        "2021-01-02T03:04:05Z"
    );
    let r = h
        .http
        .get(h.url(&format!(
            "/drives/{d}/items/{}/content",
            done["id"].as_str().unwrap()
        )))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        h.http
            .get(&loc)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec(),
        data
    );
    let (s, e) = h
        .send(
            reqwest::Method::POST,
            &format!("/drives/{d}/items/root:/Large%20upload.bin:/createUploadSession"),
            Some(json!({"item": {"@microsoft.graph.conflictBehavior": "fail"}})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("nameAlreadyExists"))
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn sites_groups_and_libraries() {
    let h = common::start(Profile::Tiny).await;
    let (s, sites) = h.get("/sites/getAllSites").await;
    assert_eq!(s, 200);
    let mut m = Vec::new();
    common::shape_mismatches(
        &common::example("site-getallsites")["value"][0],
        &sites["value"][0],
        "",
        &mut m,
    );
    // The example's root site carries `root` facets our sub-sites do not have.
    m.retain(|x| !x.contains("root"));
    assert!(m.is_empty(), "{m:?}");
    let intranet = sites["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "intranet1")
        .unwrap();
    assert!(intranet["id"].as_str().unwrap().split(',').count() == 3);
    let (s, drives) = h
        .get(&format!(
            "/sites/{}/drives",
            intranet["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 200);
    assert!(drives["value"].as_array().unwrap().len() >= 3);
    let (s, found) = h.get("/sites?search=intranet").await;
    assert_eq!((s, found["value"].as_array().unwrap().len()), (200, 1));
    let (s, groups) = h
        .get("/groups?$filter=groupTypes/any(c:c+eq+'Unified')")
        .await;
    assert_eq!(s, 200, "{groups}");
    let mut m = Vec::new();
    common::shape_mismatches(
        &common::example("group-list")["value"][0],
        &groups["value"][0],
        "",
        &mut m,
    );
    assert!(m.is_empty(), "{m:?}");
    let g = groups["value"][0]["id"].as_str().unwrap();
    let (s, _) = h.get(&format!("/groups/{g}/drive")).await;
    assert_eq!(s, 200);
    h.sim.stop().await;
}

#[tokio::test]
async fn changes_during_a_round_lose_nothing() {
    let mut o = graph_sim::SimOptions::new(Profile::Tiny);
    o.files_per_user = Some(30);
    let h = common::start_with(o).await;
    let d = drive_id(&h).await;
    let (all, _, _) = h.delta_round(&format!("/drives/{d}/root/delta"), &[]).await;
    // First page, then delete an item already returned, then finish the round.
    let (s, first) = h
        .get_with(
            &format!("/drives/{d}/root/delta"),
            &[("Prefer", "odata.maxpagesize=12")],
        )
        .await;
    assert_eq!(s, 200);
    let page: Vec<Value> = first["value"].as_array().unwrap().clone();
    let gone = page
        .iter()
        .find(|i| i.get("file").is_some())
        .expect("a file on the first page");
    h.mutate(json!({"op": "delete_file", "drive": d, "id": gone["id"]}))
        .await;
    let (rest, delta, _) = h
        .delta_round(first["@odata.nextLink"].as_str().unwrap(), &[])
        .await;
    let mut seen: Vec<&str> = page
        .iter()
        .chain(rest.iter())
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    seen.sort_unstable();
    seen.dedup();
    for item in &all {
        assert!(
            seen.contains(&item["id"].as_str().unwrap()),
            "lost {}",
            item["id"]
        );
    }
    let (next, _, _) = h.delta_round(&delta, &[]).await;
    assert!(
        next.iter()
            .any(|i| i["id"] == gone["id"] && i.get("deleted").is_some())
    );
    h.sim.stop().await;
}
