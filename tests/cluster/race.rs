//! Two nodes race to create the same ZEGO task: the same StartMix (each signed with its own nonce, as two client
//! retries would be) sent at once to node A and node B. Exactly one task comes of it, published once; both
//! answers are successes, or one is a clean refusal — never a 5xx.

use std::{
    sync::{Arc, Barrier},
    time::Duration,
};

use crate::common::*;
use crate::T;

#[test]
fn the_same_zego_start_mix_on_two_nodes_at_once_makes_one_task() {
    let mut rig = ClusterRig::start(ClusterOpts {
        nodes: 2,
        ..ClusterOpts::default()
    });
    let inputs = ["red", "green", "blue"];
    let mut tasks = Vec::new();
    for (round, input) in inputs.iter().enumerate() {
        let task = ClusterTask::zego(&format!("race{round}"), input, &format!("race{round}_out"));
        let body = zego_start_body(&task.name, &task.input, &task.output, ZEGO_SEQ, ZEGO_USER);
        let barrier = Arc::new(Barrier::new(2));
        let rig_ref = &rig;
        let replies: Vec<NodeReply> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|i| {
                    let (barrier, body) = (barrier.clone(), body.clone());
                    s.spawn(move || {
                        barrier.wait();
                        rig_ref.zego(i, "StartMix", "", Some(&body))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let summary: Vec<String> = replies
            .iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "{} → HTTP {} (executed by {:?}) {}",
                    node_id(i),
                    r.status,
                    r.node,
                    r.body
                )
            })
            .collect();
        eprintln!("race {}: {summary:#?}", task.name);
        for r in &replies {
            assert!(
                r.status < 500,
                "expected no 5xx from a race; got {summary:#?}"
            );
            assert!(
                r.body["Code"].is_u64(),
                "expected ZEGO envelopes; got {summary:#?}"
            );
        }
        assert!(
            replies.iter().any(|r| r.body["Code"] == 0),
            "expected at least one StartMix to succeed; got {summary:#?}"
        );

        let id = task.engine_id();
        rig.wait_views(
            &format!("both nodes to list one {id}, running"),
            T,
            |views| {
                for v in views {
                    let n = v.tasks.iter().filter(|t| t.id == id).count();
                    if n != 1 || !v.task(&id).unwrap().running {
                        return Err(v.summary());
                    }
                }
                check_all_running(views, std::slice::from_ref(&task), None)
            },
        );
        tasks.push(task);
    }

    // Each published once, and stays so.
    rig.wait_publishing(&tasks, T);
    std::thread::sleep(Duration::from_secs(5));
    for t in &tasks {
        let sessions = rig.sessions(&t.output);
        assert!(
            sessions.len() == 1 && sessions[0].end.is_none() && rig.attempts(&t.output).len() == 1,
            "expected one publish session on {}, up; history {}",
            t.output,
            rig.recorder.describe(OUT_APP, &t.output)
        );
    }
    let views = rig.views();
    for v in &views {
        assert_eq!(v.tasks.len(), 3, "expected 3 tasks: {}", v.summary());
    }
    // The one task answers as one: queried via either node.
    for i in 0..2 {
        let info = rig.zego(i, "GetMixTaskInfo", "&TaskId=race0", None);
        assert_eq!(
            info.zego_code(),
            0,
            "GetMixTaskInfo via {}: {}",
            node_id(i),
            info.body
        );
    }
}
