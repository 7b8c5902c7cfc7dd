//! etcd trouble. Losing etcd's leader (3 members) costs an election, not a lease: no task moves, no output
//! publishes again. etcd unreachable (its one member SIGSTOPped) longer than the lease: every node fences — stops
//! its outputs before its lease could end — and when etcd is back the nodes rejoin and every task publishes
//! again, never two publishers at once.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use crate::common::*;
use crate::T;

fn four_tasks(prefix: &str) -> Vec<ClusterTask> {
    vec![
        ClusterTask::zego(&format!("{prefix}1"), "red", &format!("{prefix}1_out")),
        ClusterTask::tencent(&format!("{prefix}2"), "green", &format!("{prefix}2_out")),
        ClusterTask::zego(&format!("{prefix}3"), "blue", &format!("{prefix}3_out")),
        ClusterTask::tencent(&format!("{prefix}4"), "red", &format!("{prefix}4_out")),
    ]
}

#[test]
fn losing_the_etcd_leader_moves_no_task() {
    let mut rig = ClusterRig::start(ClusterOpts {
        nodes: 2,
        etcd_members: 3,
        lease_ttl_ms: 6000,
        ..ClusterOpts::default()
    });
    let tasks = four_tasks("el");
    for (i, t) in tasks.iter().enumerate() {
        rig.create(i % 2, t);
    }
    rig.wait_publishing(&tasks, T);
    let before = rig.wait_views("both nodes to list the 4 tasks running", T, |views| {
        check_all_running(views, &tasks, None)
    })[0]
        .owners();
    let attempts: BTreeMap<String, usize> = tasks
        .iter()
        .map(|t| (t.output.clone(), rig.attempts(&t.output).len()))
        .collect();

    let old = rig.etcd.leader();
    rig.etcd.kill(old);
    let killed = Instant::now();
    let new = rig.etcd.leader();
    eprintln!(
        "etcd: leader m{old} killed, m{new} elected after {:?}",
        killed.elapsed()
    );
    assert_ne!(new, old);

    // For 10 s: same owners, every node active, no output publishes again.
    let mut answers = 0;
    while killed.elapsed() < Duration::from_secs(10) {
        for i in rig.answering() {
            if let Ok(v) = rig.try_view(i, Duration::from_secs(3)) {
                answers += 1;
                let owners: BTreeMap<String, String> = v
                    .owners()
                    .into_iter()
                    .filter(|(id, _)| before.contains_key(id))
                    .collect();
                assert_eq!(
                    owners,
                    before,
                    "expected no task to move after etcd lost its leader: {}",
                    v.summary()
                );
                assert_eq!(v.state, "active", "{}", v.summary());
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        answers > 0,
        "no node answered GET /v1/cluster after etcd's leader died"
    );
    for t in &tasks {
        assert_eq!(
            rig.attempts(&t.output).len(),
            attempts[&t.output],
            "expected {} to keep its one publisher; history {}",
            t.output,
            rig.recorder.describe(OUT_APP, &t.output)
        );
        assert!(
            rig.recorder.is_publishing(OUT_APP, &t.output),
            "expected {} still up; history {}",
            t.output,
            rig.recorder.describe(OUT_APP, &t.output)
        );
    }
    rig.wait_views(
        "both nodes to list the 4 tasks on their owners",
        T,
        |views| {
            check_all_running(views, &tasks, None)?;
            match views[0].owners() == before {
                true => Ok(()),
                false => Err(views[0].summary()),
            }
        },
    );
}

#[test]
fn etcd_gone_longer_than_the_lease_fences_every_node_then_they_rejoin() {
    const TTL_MS: u64 = 3000;
    let ttl = Duration::from_millis(TTL_MS);
    let mut rig = ClusterRig::start(ClusterOpts {
        nodes: 2,
        etcd_members: 1,
        lease_ttl_ms: TTL_MS,
        ..ClusterOpts::default()
    });
    let tasks = four_tasks("ep");
    for (i, t) in tasks.iter().enumerate() {
        rig.create(i % 2, t);
    }
    rig.wait_publishing(&tasks, T);
    rig.wait_views("both nodes to list the 4 tasks running", T, |views| {
        check_all_running(views, &tasks, None)
    });

    // Each output decoded, to see when its media stops.
    let probes: Vec<OutputProbe> = tasks.iter().map(|t| rig.probe(&t.output)).collect();
    for (t, p) in tasks.iter().zip(&probes) {
        p.let_frames_pass(5, T, &t.output);
    }

    rig.etcd.pause();
    let paused = Instant::now();
    let resume_at = paused + ttl + Duration::from_secs(3);

    // No node claims to be active once its lease could have ended (GET /v1/cluster reads etcd, so it may not
    // answer at all while etcd is away).
    let mut said = [Vec::new(), Vec::new()];
    while Instant::now() < resume_at {
        for (i, states) in said.iter_mut().enumerate() {
            if let Ok(v) = rig.try_view(i, Duration::from_secs(1)) {
                let late = Instant::now() > paused + ttl;
                states.push(format!(
                    "{}{}",
                    v.state,
                    if late { " (after the TTL)" } else { "" }
                ));
                assert!(
                    !late || v.state == "fenced",
                    "expected {} to say fenced once etcd was away longer than its lease; it said {}",
                    node_id(i),
                    v.summary()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("etcd paused: GET /v1/cluster answered {said:?}");
    // Every output's media stopped before the lease could have ended (the last renewal was before the pause),
    // and nginx has seen every publisher go (closed, or dropped as idle).
    let media_by = paused + ttl + Duration::from_millis(300);
    for (t, p) in tasks.iter().zip(&probes) {
        let last = p
            .frame_times()
            .last()
            .map(|f| f.0)
            .expect("frames before the pause");
        assert!(
            last <= media_by,
            "expected {}'s media to stop within the lease ({TTL_MS} ms) of etcd going away; its last frame came \
             {:?} after",
            t.output,
            last.duration_since(paused)
        );
        let sessions = rig.sessions(&t.output);
        let latest = sessions.last().expect("published before");
        assert!(
            latest.start < paused && latest.end.is_some(),
            "expected {}'s publisher gone while etcd is away (paused at {}); history {}",
            t.output,
            rig.recorder.secs(paused),
            rig.recorder.describe(OUT_APP, &t.output)
        );
    }

    rig.etcd.resume();
    let resumed = Instant::now();

    // They rejoin, and every task publishes again within 15 s.
    let mut latencies = Vec::new();
    for t in &tasks {
        let left = (resumed + Duration::from_secs(15)).saturating_duration_since(Instant::now());
        let s = rig
            .recorder
            .wait_session_after(OUT_APP, &t.output, resumed, left)
            .unwrap_or_else(|| {
                panic!(
                    "expected {} to publish again within 15 s of etcd's return; history {}",
                    t.output,
                    rig.recorder.describe(OUT_APP, &t.output)
                )
            });
        latencies.push(s.start.duration_since(resumed));
    }
    eprintln!(
        "etcd back: tasks publish again after p50 {:?}, max {:?}",
        percentile(&latencies, 50.0),
        latencies.iter().max().copied().unwrap_or_default()
    );
    for t in &tasks {
        // Nothing tried to publish between the fence and etcd's return.
        let during = rig
            .attempts(&t.output)
            .iter()
            .filter(|a| **a >= paused && **a < resumed)
            .count();
        assert_eq!(
            during,
            0,
            "expected no publish attempt on {} while fenced; history {}",
            t.output,
            rig.recorder.describe(OUT_APP, &t.output)
        );
    }
    rig.wait_formed();
    rig.wait_views("both nodes to list the 4 tasks running", T, |views| {
        check_all_running(views, &tasks, None)
    });
    rig.assert_no_overlap(&tasks);
}
