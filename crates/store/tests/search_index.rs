//! The contentless search index follows the versions: rewritten within a run, replaced by a
//! later run, pruned by retention; its compressed text goes with it, and snippets come from it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use backhome_store::{
    CreateOptions, NewVersion, NodeKind, Repository, RetentionPolicy, RunId, SearchText,
};

fn version(subject: &str, body: &str, parent: backhome_store::NodeId) -> NewVersion {
    NewVersion {
        parent: Some(parent),
        name: subject.into(),
        version_tag: Some(body.into()),
        search: Some(SearchText {
            subject: subject.into(),
            sender: "Ann <ann@example.com>".into(),
            body: body.into(),
            ..SearchText::default()
        }),
        ..NewVersion::default()
    }
}

fn hits(repo: &Repository, q: &str, at: RunId) -> Vec<String> {
    repo.search(q, at, None, 10)
        .unwrap()
        .into_iter()
        .map(|h| h.snippet)
        .collect()
}

fn texts(repo: &Repository) -> i64 {
    let c = rusqlite::Connection::open(repo.root().join("catalog.db")).unwrap();
    c.query_row("SELECT count(*) FROM search_text", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn index_follows_rewrites_replacements_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::create(dir.path().join("r"), &CreateOptions::default()).unwrap();
    let mut run = repo.begin_run().unwrap();
    let ann = common::user(&mut run, "ann");
    let f = common::folder(&mut run, ann, "inbox", None, "Inbox");
    let m = run.node(ann, "m", NodeKind::Message).unwrap();
    run.put_version(m, &version("Draft", "the aardvark plan", f))
        .unwrap();
    // Rewritten within the same run: the first text is gone from the index.
    run.put_version(m, &version("Draft", "the bandicoot plan", f))
        .unwrap();
    let r1 = run.commit(&serde_json::json!({})).unwrap().run;
    assert!(hits(&repo, "aardvark", r1).is_empty());
    assert_eq!(hits(&repo, "bandicoot", r1), ["the [bandicoot] plan"]);
    assert_eq!(texts(&repo), 1);

    // Replaced by a later run: each run finds its own version.
    let mut run = repo.begin_run().unwrap();
    run.put_version(m, &version("Final", "the capybara plan", f))
        .unwrap();
    let r2 = run.commit(&serde_json::json!({})).unwrap().run;
    assert_eq!(hits(&repo, "bandicoot", r1).len(), 1);
    assert!(hits(&repo, "bandicoot", r2).is_empty());
    assert_eq!(hits(&repo, "capy*", r2), ["the [capybara] plan"]);
    assert_eq!(hits(&repo, "sender:ann", r2), ["[Ann] <[ann]@example.com>"]);
    assert_eq!(texts(&repo), 2);

    // Retention drops the old version, its index entry and its text.
    let ret = repo
        .apply_retention(
            RetentionPolicy::KeepRuns(1),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
    assert_eq!(ret.versions_removed, 1);
    assert_eq!(texts(&repo), 1);
    assert!(hits(&repo, "bandicoot", r2).is_empty());
    assert_eq!(hits(&repo, "capybara", r2).len(), 1);

    // A version written and deleted within one run leaves nothing behind.
    let mut run = repo.begin_run().unwrap();
    let tmp = run.node(ann, "t", NodeKind::Message).unwrap();
    run.put_version(tmp, &version("Temp", "the dugong plan", f))
        .unwrap();
    run.delete_node(tmp).unwrap();
    let r3 = run.commit(&serde_json::json!({})).unwrap().run;
    assert!(hits(&repo, "dugong", r3).is_empty());
    assert_eq!(texts(&repo), 1);
}
