//! Fencing: the owner of tasks is frozen (SIGSTOP) longer than its lease (TTL 3000 ms, frozen TTL + 3 s). nginx
//! drops its silent outputs (`drop_idle_publisher`, 1 s here so it always comes before the lease can end), the
//! other node takes the tasks and publishes them. When the frozen node runs again (SIGCONT) it must not publish
//! for the tasks it lost — not even try: nginx-rtmp would call `on_publish` before refusing a second publisher —
//! and it says `fenced`, then rejoins (`active`) without taking any task back.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use crate::common::*;
use crate::T;

const TTL_MS: u64 = 3000;

#[test]
fn a_frozen_owner_never_publishes_again_for_the_tasks_it_lost_and_rejoins() {
    let ttl = Duration::from_millis(TTL_MS);
    let mut rig = ClusterRig::start(ClusterOpts {
        nodes: 2,
        lease_ttl_ms: TTL_MS,
        drop_idle_publisher_s: 1,
        ..ClusterOpts::default()
    });
    let tasks = vec![
        ClusterTask::zego("fz1", "red", "fz1_out"),
        ClusterTask::tencent("ft2", "green", "ft2_out"),
        ClusterTask::zego("fz3", "blue", "fz3_out"),
        ClusterTask::tencent("ft4", "red", "ft4_out"),
    ];
    for (i, t) in tasks.iter().enumerate() {
        rig.create(i % 2, t);
    }
    rig.wait_publishing(&tasks, T);
    // Media flows on every output before the freeze: nginx-rtmp drops an idle publisher only once it has sent
    // some (a publisher frozen between its publish and its first tag would hold the key for good).
    for t in &tasks {
        let probe = rig.probe(&t.output);
        expect_pixels(&probe, &[(W / 2, H / 2, rig.input_color(&t.input))], T);
    }
    let before = rig.wait_views("both nodes to list the 4 tasks running", T, |views| {
        check_all_running(views, &tasks, None)
    });
    let owners = before[0].owners();
    let victim_id = owners[&tasks[0].engine_id()].clone();
    let victim = rig.index_of(&victim_id);
    let survivor = 1 - victim;
    let survivor_id = node_id(survivor);
    let (lost, kept): (Vec<ClusterTask>, Vec<ClusterTask>) = tasks
        .iter()
        .cloned()
        .partition(|t| owners[&t.engine_id()] == victim_id);

    let frozen = rig.freeze(victim);

    // While it is frozen its tasks publish again from the survivor.
    for t in &lost {
        let s = rig.recorder.wait_session_after(
            OUT_APP,
            &t.output,
            frozen,
            ttl + Duration::from_secs(10),
        );
        assert!(
            s.is_some(),
            "expected {} to publish again from {survivor_id} while {victim_id} is frozen; history {}",
            t.output,
            rig.recorder.describe(OUT_APP, &t.output)
        );
    }
    rig.wait_views(
        &format!("{survivor_id} to list every task running on itself and {victim_id} not active"),
        T,
        |views| {
            check_all_running(views, &tasks, Some(&victim_id))?;
            let v = &views[0];
            match v.member(&victim_id) {
                Some(m) if m.state == "active" => Err(v.summary()),
                _ => Ok(()),
            }
        },
    );
    let until = frozen + ttl + Duration::from_secs(3);
    std::thread::sleep(until.saturating_duration_since(Instant::now()));

    let attempts_before: BTreeMap<String, usize> = lost
        .iter()
        .map(|t| (t.output.clone(), rig.attempts(&t.output).len()))
        .collect();
    let resumed = rig.thaw(victim);

    // It says fenced, then active again.
    let mut states: Vec<String> = Vec::new();
    let deadline = resumed + Duration::from_secs(20);
    loop {
        if let Ok(v) = rig.try_view(victim, Duration::from_secs(1)) {
            if states.last() != Some(&v.state) {
                states.push(v.state.clone());
            }
            if v.state == "active" && states.iter().any(|s| s == "fenced") {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "expected {victim_id} to say fenced, then active, within 20 s of SIGCONT; it said {states:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("fencing: {victim_id} after SIGCONT said {states:?}");

    // For 5 s after the resume: no publish attempt on the streams it lost, the survivor's sessions stay up.
    std::thread::sleep(
        (resumed + Duration::from_secs(5)).saturating_duration_since(Instant::now()),
    );
    let now = Instant::now();
    for t in &lost {
        let attempts = rig.attempts(&t.output).len();
        assert_eq!(
            attempts,
            attempts_before[&t.output],
            "expected no publish attempt on {} after {victim_id} resumed (it lost the task); history {}",
            t.output,
            rig.recorder.describe(OUT_APP, &t.output)
        );
        let open = rig.recorder.open_sessions(OUT_APP, &t.output);
        assert!(
            open.len() == 1 && open[0].start > frozen && open[0].covers(now),
            "expected the survivor's one session on {} up; history {}",
            t.output,
            rig.recorder.describe(OUT_APP, &t.output)
        );
    }
    // Tasks that were on the survivor never moved.
    for t in &kept {
        assert!(
            rig.recorder
                .session_after(OUT_APP, &t.output, frozen)
                .is_none()
                && rig.recorder.is_publishing(OUT_APP, &t.output),
            "expected {} (on {survivor_id}) to keep its session; history {}",
            t.output,
            rig.recorder.describe(OUT_APP, &t.output)
        );
    }

    // Both nodes active again; no task went back by itself.
    rig.wait_formed();
    let after = rig.wait_views("both nodes to list every task running", T, |views| {
        check_all_running(views, &tasks, Some(&victim_id))
    });
    for t in &tasks {
        assert_eq!(
            after[0].task(&t.engine_id()).unwrap().node,
            survivor_id,
            "{} should stay on {survivor_id}: {}",
            t.engine_id(),
            after[0].summary()
        );
    }
    rig.assert_no_overlap(&tasks);
}
