//! One endpoint: any node takes any request. Tasks created on one node are queried and stopped through another;
//! each answer names the node that executed it (`x-tessera-node`), which is the task's owner; every node's
//! `GET /v1/cluster` lists the three nodes and every task with its owner; the outputs really play.

use std::time::Duration;

use crate::common::*;
use crate::T;

#[test]
fn any_node_takes_any_request_and_forwards_it_to_the_owner() {
    let mut rig = ClusterRig::start(ClusterOpts::default());
    let (a, b, c) = (0, 1, 2);
    let zego = ClusterTask::zego("ep1", "red", "ep_zego");
    let tencent = ClusterTask::tencent("ep2", "green", "ep_tencent");
    let mix = ClusterTask::mix("ep3", "blue", "ep_native");
    let relay = ClusterTask::relay("ep4", "red", "ep_relay");

    // Every answer names a node; a creation is executed by the task's owner.
    let created = [
        (zego.clone(), rig.create(a, &zego)),
        (tencent.clone(), rig.create(a, &tencent)),
        (mix.clone(), rig.create(c, &mix)),
        (relay.clone(), rig.create(b, &relay)),
    ];
    let tasks: Vec<ClusterTask> = created.iter().map(|(t, _)| t.clone()).collect();

    // Every node lists the three nodes and the four tasks, running, with the same owners.
    let want_nodes: Vec<String> = (0..3).map(node_id).collect();
    let views = rig.wait_views(
        "every node to list the 3 nodes and the 4 tasks running, with one owner each",
        T,
        |views| {
            let first = views[0].owners();
            for v in views {
                if v.node_ids() != want_nodes {
                    return Err(v.summary());
                }
                for t in &tasks {
                    match v.task(&t.engine_id()) {
                        Some(tv) if tv.running && tv.kind == t.kind() => {}
                        _ => return Err(v.summary()),
                    }
                }
                if v.owners() != first {
                    return Err(format!("owners differ between nodes: {}", v.summary()));
                }
            }
            Ok(())
        },
    );
    for (i, v) in views.iter().enumerate() {
        assert_eq!(
            v.node,
            node_id(i),
            "GET /v1/cluster on {} names another node: {}",
            node_id(i),
            v.summary()
        );
        for n in &v.nodes {
            let idx = rig.index_of(&n.id);
            assert_eq!(
                n.url, rig.nodes[idx].base,
                "{} lists {} at another URL than its advertise_url",
                v.node, n.id
            );
            assert!(n.capacity > 0, "{} has no capacity: {}", n.id, v.summary());
        }
        let listed: u64 = v.nodes.iter().map(|n| n.tasks).sum();
        assert_eq!(listed, 4, "the nodes' task counts: {}", v.summary());
    }
    let owners = views[0].owners();
    for (task, reply) in &created {
        let owner = &owners[&task.engine_id()];
        assert_eq!(
            reply.executed_by(),
            owner,
            "the creation of {} was executed by another node than its owner",
            task.engine_id()
        );
        let cost = views[0].task(&task.engine_id()).unwrap().cost;
        assert!(
            cost > 0,
            "{} has no cost: {}",
            task.engine_id(),
            views[0].summary()
        );
    }
    // Their cost is reserved.
    for v in &views {
        let r: u64 = v.nodes.iter().map(|n| n.reserved).sum();
        assert!(r > 0, "nothing reserved: {}", v.summary());
    }

    // The outputs play, with the picture asked for.
    rig.wait_publishing(&tasks, T);
    for t in &tasks {
        let probe = rig.probe(&t.output);
        expect_pixels(&probe, &[(W / 2, H / 2, rig.input_color(&t.input))], T);
    }

    // Queried through B: ZEGO's task info, the Tencent session's mix; each answered by its owner.
    let info = rig.zego(b, "GetMixTaskInfo", "&TaskId=ep1", None);
    assert_eq!(info.zego_code(), 0, "GetMixTaskInfo via B: {}", info.body);
    assert_eq!(info.body["Data"]["TaskId"], "ep1", "{}", info.body);
    assert_eq!(
        info.executed_by(),
        owners["zego-ep1"],
        "GetMixTaskInfo via B"
    );
    let session = rig.native(b, "GET", &tencent.native_path(), None);
    assert_eq!(
        session.status,
        200,
        "GET {} via B: {}",
        tencent.native_path(),
        session.body
    );
    assert_eq!(session.body["id"], "tencent-ep2", "{}", session.body);
    assert_eq!(session.executed_by(), owners["tencent-ep2"]);
    // The native mix created via C, seen via A; the relay created via B, seen via C.
    let m = rig.native(a, "GET", "/v1/mixes/ep3", None);
    assert_eq!(m.status, 200, "GET /v1/mixes/ep3 via A: {}", m.body);
    assert_eq!(
        m.body["spec"]["outputs"][0]["target"]["stream_id"],
        "ep_native"
    );
    assert_eq!(m.executed_by(), owners["ep3"]);
    let r = rig.native(c, "GET", "/v1/relays/ep4", None);
    assert_eq!(r.status, 200, "GET /v1/relays/ep4 via C: {}", r.body);
    assert_eq!(r.executed_by(), owners["ep4"]);
    // The node's own endpoints name it.
    for i in 0..3 {
        let health = rig.native(i, "GET", "/v1/cluster", None);
        assert_eq!(health.executed_by(), node_id(i));
    }

    // Stopped through B: ZEGO and Tencent. The native ones through A.
    let stopped = rig.remove(b, &zego);
    assert_eq!(stopped.executed_by(), owners["zego-ep1"], "StopMix via B");
    let cancelled = rig.remove(b, &tencent);
    assert_eq!(
        cancelled.executed_by(),
        owners["tencent-ep2"],
        "Cancel via B"
    );
    rig.remove(a, &mix);
    rig.remove(a, &relay);
    rig.wait_views("every node to list no task", T, |views| {
        for v in views {
            if !v.tasks.is_empty() || v.nodes.iter().any(|n| n.tasks != 0 || n.reserved != 0) {
                return Err(v.summary());
            }
        }
        Ok(())
    });
    for t in &tasks {
        assert!(
            wait_for(Duration::from_secs(10), || !rig
                .recorder
                .is_publishing(OUT_APP, &t.output)),
            "expected {} to stop publishing once removed; history {}",
            t.output,
            rig.recorder.describe(OUT_APP, &t.output)
        );
        rig.recorder.assert_no_overlap(OUT_APP, &t.output);
    }
    // Gone everywhere.
    for i in 0..3 {
        let info = rig.zego(i, "GetMixTaskInfo", "&TaskId=ep1", None);
        assert_eq!(
            info.zego_code(),
            ZEGO_TASK_NOT_FOUND,
            "GetMixTaskInfo of a stopped task via {}: {}",
            node_id(i),
            info.body
        );
        for t in &tasks {
            let g = rig.native(i, "GET", &t.native_path(), None);
            assert_eq!(
                g.status,
                404,
                "GET {} via {} after removal: {}",
                t.native_path(),
                node_id(i),
                g.body
            );
        }
    }
}
