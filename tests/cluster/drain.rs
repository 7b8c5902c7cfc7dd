//! Drain: a node hands its tasks over one at a time (stop here, then start on another node) and exits with status
//! 0 once it has none; per stream the gap between the old publisher's end and the new one's start is at most
//! 4 s, and there are never two publishers. Asked three ways: `POST /v1/cluster/drain`, `tessera drain --url`,
//! and SIGTERM in cluster mode.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use crate::common::*;
use crate::T;

/// The longest a stream may be down while its task moves.
const MAX_GAP: Duration = Duration::from_secs(4);
/// How much two moves' down times may overlap and still count as one at a time: the next task may be stopped
/// once the previous one runs elsewhere, a moment before its RTMP publish reaches nginx.
const SEQUENTIAL_SLACK: Duration = Duration::from_secs(1);

/// How a stream changed hands after `since`: (end of the session that was up at `since`, start of the next).
fn handover(rig: &ClusterRig, stream: &str, since: Instant) -> (Instant, Instant) {
    let sessions = rig.sessions(stream);
    let old = sessions
        .iter()
        .rfind(|s| s.start <= since)
        .unwrap_or_else(|| {
            panic!(
                "expected {stream} to be publishing before the drain; history {}",
                rig.recorder.describe(OUT_APP, stream)
            )
        });
    let end = old.end.unwrap_or_else(|| {
        panic!(
            "expected {stream}'s old publisher to stop; history {}",
            rig.recorder.describe(OUT_APP, stream)
        )
    });
    // The new node says a task runs once its pipeline is up; its output publishes a moment later.
    let next = rig
        .recorder
        .wait_session_after(OUT_APP, stream, end, Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "expected {stream} to publish again within 10 s of its old publisher stopping; history {}",
                rig.recorder.describe(OUT_APP, stream)
            )
        });
    (end, next.start)
}

/// Each moved stream was down at most [`MAX_GAP`]; the moves came one after another; no two publishers ever.
fn assert_moves(rig: &ClusterRig, moved: &[ClusterTask], since: Instant, what: &str) {
    let mut downs: Vec<(Instant, Instant, String)> = moved
        .iter()
        .map(|t| {
            let (end, start) = handover(rig, &t.output, since);
            (end, start, t.output.clone())
        })
        .collect();
    downs.sort();
    let gaps: Vec<String> = downs
        .iter()
        .map(|(e, s, n)| format!("{n} {:?}", s.duration_since(*e)))
        .collect();
    eprintln!("{what}: streams down while moving: {gaps:?}");
    for (end, start, name) in &downs {
        assert!(
            start.duration_since(*end) <= MAX_GAP,
            "{what}: expected {name} down at most {MAX_GAP:?} while it moved, it was down {:?}; history {}",
            start.duration_since(*end),
            rig.recorder.describe(OUT_APP, name)
        );
    }
    for w in downs.windows(2) {
        let ((_, prev_start, prev), (next_end, _, next)) = (&w[0], &w[1]);
        assert!(
            *next_end + SEQUENTIAL_SLACK >= *prev_start,
            "{what}: expected one task to move at a time, but {next} stopped {:?} before {prev} published again\n{}",
            prev_start.duration_since(*next_end),
            rig.publish_history()
        );
    }
    rig.assert_no_overlap(moved);
}

#[test]
fn drain_moves_tasks_one_at_a_time_then_the_node_exits_0() {
    let mut rig = ClusterRig::start(ClusterOpts {
        nodes: 2,
        start: 1,
        ..ClusterOpts::default()
    });
    let (a, b) = (0, 1);
    let tasks = vec![
        ClusterTask::zego("dz1", "red", "dz1_out"),
        ClusterTask::tencent("dt2", "green", "dt2_out"),
        ClusterTask::mix("dm3", "blue", "dm3_out"),
    ];
    for t in &tasks {
        rig.create(a, t);
    }
    rig.wait_publishing(&tasks, T);
    rig.start_node(b);
    let views = rig.wait_views("both nodes to list the 3 tasks running", T, |views| {
        check_all_running(views, &tasks, Some("node-b"))
    });
    assert_eq!(
        views[0].tasks_of("node-a").len(),
        3,
        "{}",
        views[0].summary()
    );

    let drain_at = Instant::now();
    let r = rig.native(a, "POST", "/v1/cluster/drain", None);
    assert_eq!(r.status, 202, "POST /v1/cluster/drain: {}", r.body);
    assert_eq!(r.body["node"], "node-a", "{}", r.body);
    assert_eq!(r.body["state"], "draining", "{}", r.body);
    assert_eq!(r.body["remaining"], 3, "{}", r.body);

    // While A drains, B always lists the three tasks, at most one of them not running.
    let mut worst = 0;
    let mut seen_draining = false;
    let deadline = drain_at + Duration::from_secs(60);
    while rig.nodes[a].running() {
        assert!(
            Instant::now() < deadline,
            "expected node-a to exit within 60 s of the drain"
        );
        if !seen_draining {
            if let Ok(v) = rig.try_view(a, Duration::from_secs(1)) {
                seen_draining = v.state == "draining";
            }
        }
        if let Ok(v) = rig.try_view(b, Duration::from_secs(2)) {
            for t in &tasks {
                assert!(
                    v.task(&t.engine_id()).is_some(),
                    "expected {} listed throughout the drain: {}",
                    t.engine_id(),
                    v.summary()
                );
            }
            let down = v.tasks.iter().filter(|t| !t.running).count();
            worst = worst.max(down);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    rig.wait_clean_exit(a, Duration::from_secs(5));
    assert!(
        seen_draining,
        "node-a never said draining in GET /v1/cluster"
    );
    assert!(
        worst <= 1,
        "expected one task to move at a time; node-b once listed {worst} tasks not running"
    );

    rig.wait_views(
        "node-b to list itself alone and the 3 tasks running on it",
        T,
        |views| {
            if views[0].node_ids() != ["node-b"] {
                return Err(views[0].summary());
            }
            check_all_running(views, &tasks, Some("node-a"))
        },
    );
    assert_moves(&rig, &tasks, drain_at, "drain by API");
    let probe = rig.probe("dm3_out");
    expect_pixels(&probe, &[(W / 2, H / 2, BLUE)], T);
}

#[test]
fn tessera_drain_and_sigterm_move_tasks_then_exit_0() {
    let mut rig = ClusterRig::start(ClusterOpts {
        nodes: 3,
        start: 1,
        ..ClusterOpts::default()
    });
    let tasks = vec![
        ClusterTask::zego("dz5", "red", "dz5_out"),
        ClusterTask::tencent("dt6", "green", "dt6_out"),
    ];
    for t in &tasks {
        rig.create(0, t);
    }
    rig.wait_publishing(&tasks, T);
    rig.start_nodes(&[1, 2]);
    rig.wait_views("every node to list the 2 tasks running", T, |views| {
        check_all_running(views, &tasks, Some("node-b"))?;
        check_all_running(views, &tasks, Some("node-c"))
    });

    // `tessera drain --url A` returns once A is gone.
    let drain_at = Instant::now();
    let mut cli = Command::new(binary())
        .args(["drain", "--url", &rig.nodes[0].base])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tessera drain");
    let cli_deadline = drain_at + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = cli.try_wait().expect("tessera drain") {
            break s;
        }
        if Instant::now() > cli_deadline {
            let _ = cli.kill();
            panic!("expected `tessera drain` to return within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = cli.wait_with_output().expect("tessera drain output");
    assert!(
        status.success(),
        "`tessera drain --url {}` exited with {status}\nstdout: {}\nstderr: {}",
        rig.nodes[0].base,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The node is gone when the command returns.
    rig.wait_clean_exit(0, Duration::from_secs(2));
    let views = rig.wait_views(
        "node-b and node-c to list the 2 tasks running on them",
        T,
        |views| {
            if views.iter().any(|v| v.member("node-a").is_some()) {
                return Err(views[0].summary());
            }
            check_all_running(views, &tasks, Some("node-a"))
        },
    );
    assert_moves(&rig, &tasks, drain_at, "tessera drain");

    // SIGTERM on the node with the most tasks: they move to the last node, then it exits 0.
    let busiest = if views[0].tasks_of("node-b").len() >= views[0].tasks_of("node-c").len() {
        1
    } else {
        2
    };
    let last = 3 - busiest;
    let busiest_id = node_id(busiest);
    let moving: Vec<ClusterTask> = tasks
        .iter()
        .filter(|t| views[0].task(&t.engine_id()).unwrap().node == busiest_id)
        .cloned()
        .collect();
    let term_at = rig.terminate(busiest);
    rig.wait_clean_exit(busiest, Duration::from_secs(60 + 10));
    rig.wait_views(
        &format!("{} alone with the 2 tasks running on it", node_id(last)),
        T,
        |views| {
            if views[0].node_ids() != [node_id(last)] {
                return Err(views[0].summary());
            }
            check_all_running(views, &tasks, Some(&busiest_id))
        },
    );
    assert_moves(&rig, &moving, term_at, "SIGTERM");
    rig.assert_no_overlap(&tasks);
}
