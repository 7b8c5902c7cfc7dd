//! A full cluster: every node's capacity takes two small mixes (src/cluster/cost.rs: a task's cost is known from
//! its spec; inputs nobody publishes keep their sizes unknown, so each costs the same). One more is refused with
//! the dialect's "full" answer — ZEGO's 110200151, the native API's 409 `limit_exceeded` (ErrorKind::LimitExceeded
//! in src/api/zego/mod.rs and src/api/error.rs) — and nothing of it is left: not listed, not in etcd, never
//! published. Once a task stops, the refused one fits.

use std::time::Duration;

use crate::common::*;
use crate::T;

/// The cost model's figure for one of [`zego_start_body`]'s tasks: the native spec ZEGO's translation makes of
/// it (one input over the whole 320×180 canvas at 15 fps, one output), sizes unknown.
fn small_task_cost() -> u64 {
    let spec: tessera::model::MixSpec =
        serde_json::from_value(native_mix_body("nobody", "out")).expect("a native spec");
    tessera::cluster::cost::mix_cost(&spec, |_| None)
}

#[test]
fn a_full_cluster_refuses_with_the_dialects_answer_and_keeps_nothing() {
    let cost = small_task_cost();
    let capacity = cost * 2 + cost / 2;
    let mut rig = ClusterRig::start(ClusterOpts {
        nodes: 2,
        capacity,
        // Inputs no one publishes: ZEGO must not look for them.
        zego_input_check_ms: Some(0),
        ..ClusterOpts::default()
    });
    let task = |i: usize| {
        ClusterTask::zego(
            &format!("full{i}"),
            &format!("nofull{i}"),
            &format!("full{i}_out"),
        )
    };

    // Fill it, one at a time, through either node.
    let mut accepted = Vec::new();
    let mut refused = None;
    for i in 0..12 {
        let t = task(i);
        let r = rig.try_create(i % 2, &t);
        assert_eq!(
            r.status, 200,
            "StartMix {}: HTTP {} {}",
            t.name, r.status, r.body
        );
        if r.zego_code() != 0 {
            refused = Some((t, r));
            break;
        }
        let id = t.engine_id();
        rig.wait_views(&format!("both nodes to list {id}"), T, |views| match views
            .iter()
            .all(|v| v.task(&id).is_some())
        {
            true => Ok(()),
            false => Err(views
                .iter()
                .map(ClusterView::summary)
                .collect::<Vec<_>>()
                .join(" | ")),
        });
        accepted.push(t);
    }
    let views = rig.views();
    let (refused, reply) = refused.unwrap_or_else(|| {
        panic!(
            "expected a refusal once the cluster was full (capacity {capacity} per node, a task costs {cost}); \
             12 accepted: {}",
            views[0].summary()
        )
    });
    assert_eq!(
        reply.zego_code(),
        ZEGO_TASK_FAILED,
        "a full cluster's answer to StartMix {}: {}",
        refused.name,
        reply.body
    );

    // It was full: no node had room for one more of these, and each took what fits.
    let v = &views[0];
    let listed_cost = v.task(&accepted[0].engine_id()).unwrap().cost;
    eprintln!(
        "full: capacity {capacity} per node, cost model {cost}, listed cost {listed_cost}, {} accepted: {}",
        accepted.len(),
        v.summary()
    );
    let fits: u64 = v.nodes.iter().map(|n| n.capacity / listed_cost).sum();
    assert_eq!(
        accepted.len() as u64,
        fits,
        "expected as many tasks as fit ({fits}) before the refusal: {}",
        v.summary()
    );
    for n in &v.nodes {
        assert_eq!(n.capacity, capacity, "{}", v.summary());
        assert!(
            n.capacity.saturating_sub(n.reserved) < listed_cost,
            "refused while {} had room ({} of {} reserved, a task costs {listed_cost})",
            n.id,
            n.reserved,
            n.capacity
        );
    }

    // Refused the same way through the other node, and through the native API.
    let other = rig.try_create(1 - accepted.len() % 2, &refused);
    assert_eq!(other.zego_code(), ZEGO_TASK_FAILED, "{}", other.body);
    let native = ClusterTask::mix("fullnative", "nofulln", "fullnative_out");
    let n = rig.try_create(0, &native);
    assert_eq!(
        (n.status, n.body["error"]["code"].as_str()),
        (409, Some("limit_exceeded")),
        "a full cluster's answer to PUT /v1/mixes/fullnative: {} {}",
        n.status,
        n.body
    );

    // Nothing left of them: not listed, unknown to ZEGO, not in etcd, never published.
    std::thread::sleep(Duration::from_secs(2));
    for i in 0..2 {
        let v = rig.view(i);
        for id in [refused.engine_id(), native.engine_id()] {
            assert!(v.task(&id).is_none(), "{id} left behind: {}", v.summary());
        }
        let info = rig.zego(
            i,
            "GetMixTaskInfo",
            &format!("&TaskId={}", refused.name),
            None,
        );
        assert_eq!(
            info.zego_code(),
            ZEGO_TASK_NOT_FOUND,
            "GetMixTaskInfo of the refused task via {}: {}",
            node_id(i),
            info.body
        );
        let g = rig.native(i, "GET", &native.native_path(), None);
        assert_eq!(
            g.status,
            404,
            "GET {} via {}: {}",
            native.native_path(),
            node_id(i),
            g.body
        );
    }
    let stored = rig.etcd.get_prefix(PREFIX);
    for (k, val) in &stored {
        for name in [&refused.name, &native.name] {
            assert!(
                !k.contains(name.as_str()) && !val.contains(name.as_str()),
                "the refused {name} is left in etcd: {k} = {val}"
            );
        }
    }
    for out in [&refused.output, &native.output] {
        assert!(
            rig.attempts(out).is_empty(),
            "the refused task published {out}: {}",
            rig.recorder.describe(OUT_APP, out)
        );
    }

    // Room again once a task stops: the refused one fits now.
    rig.remove(0, &accepted[0]);
    let gone = accepted[0].engine_id();
    rig.wait_views(&format!("no node to list {gone}"), T, |views| {
        match views.iter().all(|v| v.task(&gone).is_none()) {
            true => Ok(()),
            false => Err(views[0].summary()),
        }
    });
    let again = rig.try_create(0, &refused);
    assert_eq!(
        again.zego_code(),
        0,
        "StartMix {} once a task stopped: {}",
        refused.name,
        again.body
    );
}
