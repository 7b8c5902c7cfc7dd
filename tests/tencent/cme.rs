//! CME stream-connect (云转推) projects through the official `tencentcloud-sdk-python-cme` client: the relay engine
//! behind Tencent's project API.

use std::time::Duration;

use serde_json::{json, Value};

use super::cloud::{error_code, sdk_product};
use super::*;

fn cme(rig: &Rig, action: &str, params: Value) -> Value {
    sdk_product(rig, "cme", action, &params, SECRET_ID, SECRET_KEY, None)
}

fn handle(rig: &Rig, pid: &str, op: &str, extra: Value) -> Value {
    let mut p = json!({"Platform": "tessera", "ProjectId": pid, "Operation": op});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    cme(rig, "HandleStreamConnectProject", p)
}

fn describe(rig: &Rig, pid: &str) -> Value {
    let r = cme(
        rig,
        "DescribeProjects",
        json!({"Platform": "tessera", "ProjectIds": [pid]}),
    );
    r["ok"]["ProjectInfoSet"][0].clone()
}

#[test]
fn a_cme_project_relays_fails_over_changes_outputs_and_stops_on_time() {
    let rig = rig();
    let out = |s: &str| rig.nginx.rtmp_url("mix", s);
    let created = cme(
        &rig,
        "CreateProject",
        json!({
            "Platform": "tessera", "Name": "multi-platform", "Category": "STREAM_CONNECT",
            "Owner": {"Type": "PERSON", "Id": "user_1"},
            "StreamConnectProjectInput": {
                "MainInput": {"InputType": "LivePull", "LivePullInputInfo": {"InputUrl": rig.nginx.rtmp_url("live", "src_main")}},
                "BackupInput": {"InputType": "RtmpPush", "RtmpPushInputInfo": {"ExpiredSecond": 3600}},
                "Outputs": [
                    {"Id": "1", "Name": "site one", "Type": "URL", "PushUrl": out("cme_o1")},
                    {"Name": "site two", "PushUrl": out("cme_o2")}
                ]
            }
        }),
    );
    let pid = created["ok"]["ProjectId"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    assert!(pid.starts_with("cmepid_"));
    let push = created["ok"]["RtmpPushInputInfoSet"].clone();
    assert_eq!(push[0]["PushUrl"], "");
    let backup_url = push[1]["PushUrl"].as_str().unwrap().to_string();
    assert_eq!(
        backup_url,
        rig.nginx.rtmp_url("live", &format!("{pid}_backup"))
    );
    let info = describe(&rig, &pid);
    assert_eq!(info["StreamConnectProjectInfo"]["Status"], "Idle", "{info}");
    assert_eq!(
        info["StreamConnectProjectInfo"]["OutputSet"][1]["StreamConnectOutput"]["Id"],
        "2"
    );

    let _main = rig.live("src_main", RED, None);
    let _backup = Publisher::start(
        &backup_url,
        PublishOpts {
            pattern: Pattern::Solid(GREEN),
            ..PublishOpts::default()
        },
    );
    assert!(handle(&rig, &pid, "Start", json!({}))["ok"].is_object());
    let o1 = rig.probe("cme_o1");
    let o2 = rig.probe("cme_o2");
    expect_pixels(&o1, &[(160, 90, RED)], T);
    expect_pixels(&o2, &[(160, 90, RED)], T);
    let info = describe(&rig, &pid);
    let sc = &info["StreamConnectProjectInfo"];
    assert_eq!(
        (sc["Status"].as_str(), sc["CurrentInputEndpoint"].as_str()),
        (Some("Working"), Some("Main")),
        "{info}"
    );
    assert_eq!(sc["OutputSet"][0]["PushSwitch"], "On");
    assert!(!sc["CurrentStartTime"].as_str().unwrap().is_empty());

    // Manual switch to the pushed backup.
    assert!(handle(
        &rig,
        &pid,
        "SwitchInput",
        json!({"InputEndpoint": "Backup"})
    )["ok"]
        .is_object());
    expect_pixels(&o1, &[(160, 90, GREEN)], T);
    assert_eq!(
        describe(&rig, &pid)["StreamConnectProjectInfo"]["CurrentInputEndpoint"],
        "Backup"
    );

    // Outputs change live.
    assert!(handle(
        &rig,
        &pid,
        "AddOutput",
        json!({"OutputInfo": {"Id": "3", "Name": "three", "PushUrl": out("cme_o3")}})
    )["ok"]
        .is_object());
    let o3 = rig.probe("cme_o3");
    expect_pixels(&o3, &[(160, 90, GREEN)], T);
    assert!(handle(
        &rig,
        &pid,
        "DeleteOutput",
        json!({"OutputInfo": {"Id": "2"}})
    )["ok"]
        .is_object());
    assert!(wait_for(T, || !rig.nginx.is_publishing("mix", "cme_o2")));
    assert!(rig.nginx.is_publishing("mix", "cme_o1"));
    assert_eq!(
        error_code(&handle(
            &rig,
            &pid,
            "DeleteOutput",
            json!({"OutputInfo": {"Id": "2"}})
        )),
        "InvalidParameterValue.StreamConnectOutputInvalid"
    );

    // Working projects cannot be deleted; a stop time ends the project by itself.
    assert_eq!(
        error_code(&cme(
            &rig,
            "DeleteProject",
            json!({"Platform": "tessera", "ProjectId": pid})
        )),
        "FailedOperation.ProjectWorking"
    );
    let stop = tessera::api::tencent::isotime::format(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + 3,
    );
    assert!(handle(
        &rig,
        &pid,
        "ModifyCurrentStopTime",
        json!({"CurrentStopTime": stop})
    )["ok"]
        .is_object());
    assert!(
        wait_for(Duration::from_secs(20), || describe(&rig, &pid)
            ["StreamConnectProjectInfo"]["Status"]
            == "Idle"),
        "the stop time did not stop the project"
    );
    assert!(wait_for(T, || !rig.nginx.is_publishing("mix", "cme_o1")));
    assert!(
        !describe(&rig, &pid)["StreamConnectProjectInfo"]["LastStopTime"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert!(cme(
        &rig,
        "DeleteProject",
        json!({"Platform": "tessera", "ProjectId": pid})
    )["ok"]
        .is_object());
    let gone = cme(
        &rig,
        "DescribeProjects",
        json!({"Platform": "tessera", "ProjectIds": [pid]}),
    );
    assert_eq!(gone["ok"]["TotalCount"], 0);
    assert_eq!(
        error_code(&handle(&rig, &pid, "Start", json!({}))),
        "InvalidParameterValue.ProjectId"
    );
}

#[test]
fn cme_refusals_name_the_problem() {
    let rig = rig();
    let base = || {
        json!({
            "Platform": "tessera", "Name": "p", "Category": "STREAM_CONNECT", "Owner": {"Type": "PERSON", "Id": "u"},
            "StreamConnectProjectInput": {
                "MainInput": {"InputType": "LivePull", "LivePullInputInfo": {"InputUrl": "rtmp://127.0.0.1/live/x"}},
                "Outputs": [{"Id": "1", "PushUrl": "rtmp://127.0.0.1/mix/y"}]
            }
        })
    };
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = base();
        f(&mut v);
        v
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "empty platform",
            with(&|v| v["Platform"] = json!("")),
            "InvalidParameter.Platform",
        ),
        (
            "no name",
            with(&|v| {
                v.as_object_mut().unwrap().remove("Name");
            }),
            "MissingParameter",
        ),
        (
            "pull without URL",
            with(&|v| {
                v["StreamConnectProjectInput"]["MainInput"]["LivePullInputInfo"]["InputUrl"] =
                    json!("")
            }),
            "InvalidParameterValue.StreamConnectInputInvalid",
        ),
        (
            "ftp input",
            with(&|v| {
                v["StreamConnectProjectInput"]["MainInput"]["LivePullInputInfo"]["InputUrl"] =
                    json!("ftp://x/y")
            }),
            "InvalidParameterValue.StreamConnectInputInvalid",
        ),
        (
            "VodPull without URLs",
            with(
                &|v| v["StreamConnectProjectInput"]["MainInput"] = json!({"InputType": "VodPull", "VodPullInputInfo": {"InputUrls": [], "LoopTimes": 0}}),
            ),
            "InvalidParameterValue.StreamConnectInputInvalid",
        ),
        (
            "VodPull of an rtmp URL",
            with(
                &|v| v["StreamConnectProjectInput"]["MainInput"] = json!({"InputType": "VodPull", "VodPullInputInfo": {"InputUrls": ["rtmp://127.0.0.1/live/x"]}}),
            ),
            "InvalidParameterValue.StreamConnectInputInvalid",
        ),
        (
            "http output",
            with(&|v| {
                v["StreamConnectProjectInput"]["Outputs"][0]["PushUrl"] = json!("http://x/y")
            }),
            "InvalidParameterValue.StreamConnectOutputInvalid",
        ),
        (
            "11 outputs",
            with(&|v| {
                v["StreamConnectProjectInput"]["Outputs"] = json!((0..11)
                    .map(|i| json!({"PushUrl": format!("rtmp://127.0.0.1/mix/o{i}")}))
                    .collect::<Vec<_>>())
            }),
            "InvalidParameterValue.StreamConnectOutputInvalid",
        ),
    ];
    let mut wrong = Vec::new();
    for (what, params, want) in cases {
        let got = error_code(&cme(&rig, "CreateProject", params));
        if got != want {
            wrong.push(format!("{what}: want {want}, got {got}"));
        }
    }
    let bad_key = sdk_product(
        &rig,
        "cme",
        "DescribeProjects",
        &json!({"Platform": "tessera"}),
        SECRET_ID,
        "wrong",
        None,
    );
    if error_code(&bad_key) != "AuthFailure.SignatureFailure" {
        wrong.push(format!("wrong key: {bad_key}"));
    }
    let unknown = handle(&rig, "cmepid_nope", "Start", json!({}));
    if error_code(&unknown) != "InvalidParameterValue.ProjectId" {
        wrong.push(format!("unknown project: {unknown}"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_cme_vod_pull_input_is_played_and_reports_its_position() {
    let rig = rig();
    let opts = PublishOpts {
        pattern: Pattern::Solid(MAGENTA),
        ..PublishOpts::default()
    };
    write_flv(&rig.nginx.http_dir().join("vod.flv"), &opts, 4);
    let url = rig.nginx.http_url("vod.flv");
    let created = cme(
        &rig,
        "CreateProject",
        json!({
            "Platform": "tessera", "Name": "playlist", "Category": "STREAM_CONNECT",
            "Owner": {"Type": "PERSON", "Id": "user_1"},
            "StreamConnectProjectInput": {
                "MainInput": {"InputType": "VodPull", "VodPullInputInfo": {"InputUrls": [url], "LoopTimes": -1}},
                "Outputs": [{"Id": "1", "Name": "site", "PushUrl": rig.nginx.rtmp_url("mix", "cme_vod")}]
            }
        }),
    );
    let pid = created["ok"]["ProjectId"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    let main = &describe(&rig, &pid)["StreamConnectProjectInfo"]["MainInput"];
    assert_eq!(main["InputType"], "VodPull", "{main}");
    assert_eq!(
        main["VodPullInputInfo"],
        json!({"InputUrls": [url], "LoopTimes": -1})
    );
    let play_info = |endpoint: &str| {
        let r = handle(
            &rig,
            &pid,
            "DescribeInputPlayInfo",
            json!({"InputEndpoint": endpoint}),
        );
        assert!(r["ok"].is_object(), "{r}");
        r["ok"]["VodPullInputPlayInfo"].clone()
    };
    // Nothing plays while the project is idle.
    assert!(play_info("Main").is_null());

    assert!(handle(&rig, &pid, "Start", json!({}))["ok"].is_object());
    let o = rig.probe("cme_vod");
    expect_pixels(&o, &[(160, 90, MAGENTA)], T);
    let mut info = Value::Null;
    assert!(
        wait_for(Duration::from_secs(10), || {
            info = play_info("Main");
            !info.is_null()
        }),
        "no play info"
    );
    assert_eq!(info["Url"], url.as_str(), "{info}");
    let offset = info["TimeOffset"].as_f64().unwrap_or(-1.0);
    assert!((0.0..=4.0).contains(&offset), "{info}");
    // Without a backup input there is nothing to describe.
    assert!(play_info("Backup").is_null());
    assert!(handle(&rig, &pid, "Stop", json!({}))["ok"].is_object());
    assert!(play_info("Main").is_null());
}

/// `RtmpPushInputInfo.ExpiredSecond`: the push URL takes publishes until it expires, then the ingest's
/// `on_publish` callback refuses them; a `ModifyInput` issues it again with a new expiry.
#[test]
fn an_expired_cme_push_url_refuses_new_publishes() {
    init();
    let port = free_port();
    let nginx = Nginx::start_with_callbacks(port);
    let mut config = Tessera::config_for(&nginx);
    config.tencentcloud.secret_id = SECRET_ID.into();
    config.tencentcloud.secret_key = SECRET_KEY.into();
    let tessera = Tessera::start_at(config, port);
    let rig = Rig { tessera, nginx };
    let push_input =
        |secs: i64| json!({"InputType": "RtmpPush", "RtmpPushInputInfo": {"ExpiredSecond": secs}});
    let issued = std::time::Instant::now();
    let created = cme(
        &rig,
        "CreateProject",
        json!({
            "Platform": "tessera", "Name": "expiring", "Category": "STREAM_CONNECT",
            "Owner": {"Type": "PERSON", "Id": "user_1"},
            "StreamConnectProjectInput": {
                "MainInput": push_input(4),
                "Outputs": [{"Id": "1", "Name": "site", "Type": "URL", "PushUrl": rig.nginx.rtmp_url("mix", "cme_exp")}]
            }
        }),
    );
    let pid = created["ok"]["ProjectId"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    let push = &created["ok"]["RtmpPushInputInfoSet"][0];
    assert_eq!(push["ExpiredSecond"], 4);
    let url = push["PushUrl"].as_str().unwrap().to_string();
    let stream = format!("{pid}_main");
    assert!(url.ends_with(&format!("/live/{stream}")), "{url}");
    let publish = || {
        Publisher::start(
            &url,
            PublishOpts {
                pattern: Pattern::Solid(RED),
                ..PublishOpts::default()
            },
        )
    };

    let first = publish();
    assert!(
        wait_for(T, || rig.nginx.is_publishing("live", &stream)),
        "a publish before the expiry was not accepted"
    );
    first.stop();
    assert!(wait_for(T, || !rig.nginx.is_publishing("live", &stream)));

    std::thread::sleep(Duration::from_secs(5).saturating_sub(issued.elapsed()));
    let late = publish();
    assert!(
        wait_for(T, || late.failed()),
        "a publish after the expiry was not refused"
    );
    assert!(!rig.nginx.is_publishing("live", &stream));
    late.stop();

    let modified = handle(
        &rig,
        &pid,
        "ModifyInput",
        json!({"InputEndpoint": "Main", "InputInfo": push_input(0)}),
    );
    assert_eq!(
        modified["ok"]["StreamInputRtmpPushUrl"],
        url.as_str(),
        "{modified}"
    );
    let again = publish();
    assert!(
        wait_for(T, || rig.nginx.is_publishing("live", &stream)),
        "a re-issued push URL without expiry was refused"
    );
    again.stop();
}
