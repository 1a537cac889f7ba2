//! A run's progress against the simulator: every protected object counts the containers it walks
//! (mail folders, calendars, contact folders, drives, libraries, channels), the counts only grow
//! while the run goes, and each object ends with every container done.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use backhome::backup::{self, Progress};
use backhome::task::Service;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_object_ends_with_all_its_containers_done() {
    let env = common::env(&Service::ALL).await;
    let client = backhome::connect::client(&env.spec, &env.creds).unwrap();
    let progress = Arc::new(Progress::default());
    let summary = backup::run(
        client,
        env.repo.clone(),
        &env.spec,
        Arc::clone(&progress),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);

    let end = progress.snapshot();
    let started: Vec<_> = end
        .objects
        .iter()
        .filter(|(_, o)| o.done || o.containers_total > 0)
        .collect();
    assert!(end.objects_total >= 3, "users, groups and sites: {end:?}");
    assert_eq!(end.objects_done, end.objects_total, "{end:?}");
    assert_eq!(started.len() as u64, end.objects_total, "{end:?}");
    for (name, o) in &started {
        assert!(o.done, "{name} not finished: {o:?}");
        assert_eq!(o.containers_pending, 0, "{name}: {o:?}");
        assert_eq!(o.containers_done, o.containers_total, "{name}: {o:?}");
    }
    // A user with mail, calendar, contacts and OneDrive walks several containers.
    assert!(
        started.iter().any(|(_, o)| o.containers_total >= 4),
        "{started:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn container_counts_only_grow_during_a_run() {
    let env = common::env(&[Service::Mail, Service::Contacts]).await;
    let client = backhome::connect::client(&env.spec, &env.creds).unwrap();
    let progress = Arc::new(Progress::default());
    let run = {
        let (repo, spec, p) = (env.repo.clone(), env.spec.clone(), Arc::clone(&progress));
        tokio::spawn(async move {
            backup::run(client, repo, &spec, p, Arc::new(AtomicBool::new(false))).await
        })
    };
    let mut samples = Vec::new();
    while !run.is_finished() {
        samples.push(progress.snapshot());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    run.await.unwrap().unwrap();
    samples.push(progress.snapshot());
    for pair in samples.windows(2) {
        for (name, after) in &pair[1].objects {
            let Some(before) = pair[0].objects.get(name) else {
                continue;
            };
            assert!(after.containers_done >= before.containers_done, "{name}");
            assert!(
                after.containers_done <= after.containers_total,
                "{name}: {after:?}"
            );
        }
    }
    let last = samples.last().unwrap();
    assert!(
        last.objects
            .values()
            .all(|o| o.containers_done == o.containers_total)
    );
    assert!(
        last.objects.values().any(|o| o.containers_total >= 2),
        "{last:?}"
    );
}
