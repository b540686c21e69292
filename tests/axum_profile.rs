//! The CPU profile of a real axum service over real HTTP on loopback, with taskscope's tower
//! layer: a handler that spends 70 % of its time in a checksum and 30 % in a parse is profiled
//! as such under its route, from the API, from a recording read back, and in the pprof, JSON
//! and folded reports of that recording.

mod common;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::{get_body, HttpClient};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use taskscope::Snapshot;
use taskscope_wire::Profile;

#[path = "../examples/common/cpu_work.rs"]
mod cpu_work;

/// Each request: 1.4 ms of CPU in `checksum`, then 0.6 ms in `parse`.
static WORK: cpu_work::Work =
    cpu_work::Work::new(Duration::from_micros(1400), Duration::from_micros(600));

async fn work() -> String {
    WORK.run().to_string()
}

/// Samples labelled `label` with `function` on the stack.
fn samples_in(profile: &Profile, label: &str, function: &str) -> u64 {
    let keep = |s: &taskscope_wire::ProfileStack| profile.label(s) == label;
    profile
        .functions(keep)
        .into_iter()
        .find(|f| f.function.ends_with(function))
        .map_or(0, |f| f.total_samples)
}

/// The profile splits the route's samples between the two functions as their CPU time was
/// split, within 6 points.
fn assert_split(profile: &Profile, from: &str) {
    let label = "[uninstrumented]/GET /work";
    let checksum = samples_in(profile, label, "::checksum") as f64;
    let parse = samples_in(profile, label, "::parse") as f64;
    let truth = WORK.checksum_share();
    let measured = checksum / (checksum + parse).max(1.0);
    eprintln!(
        "{from}: {} samples, checksum {measured:.3} of checksum + parse (CPU time: {truth:.3})",
        checksum + parse
    );
    assert!(
        checksum + parse > 100.0,
        "{from}: {checksum} + {parse} samples: {:?}",
        profile.by_label()
    );
    assert!(
        (measured - truth).abs() <= 0.06,
        "{from}: checksum {measured:.3} of the samples, {truth:.3} of the CPU time"
    );
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handlers_cpu_is_split_between_its_functions_under_its_route() {
    WORK.calibrate();
    let dir = std::env::temp_dir().join(format!("taskscope-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recording = dir.join("run.tsrec");
    let guard = {
        let recording = recording.clone();
        common::exclusive(move || {
            taskscope::Builder::new()
                .no_server()
                .profile_hz(499)
                .record(&recording)
        })
    };
    let app = Router::new()
        .route("/work", get(work))
        .layer(taskscope::tower::TaskscopeLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    // Until the handlers have used 1.5 s of CPU, however loaded the machine.
    let mut requests = 0;
    while WORK.spent_ns() < 1_500_000_000 {
        let body = get_body(&client, format!("http://{addr}/work")).await;
        assert!(body.parse::<u64>().is_ok(), "{body}");
        requests += 1;
    }
    assert!(requests > 100, "{requests} requests");

    let live = taskscope::snapshot();
    assert_split(live.profile.as_ref().expect("a live profile"), "snapshot()");
    let last: Snapshot = guard.finish().unwrap();
    let replayed = common::read_recording(&recording);
    let profile = replayed.profile.as_ref().expect("a recorded profile");
    assert_eq!(
        profile,
        last.profile.as_ref().unwrap(),
        "the last frame holds the final profile"
    );
    assert_split(profile, "the recording");

    // pprof: the samples of the route add up under its labels.
    let gz = taskscope_report::Format::Pprof.bytes(&replayed);
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
    let pprof =
        <taskscope_report::pprof::PprofProfile as prost::Message>::decode(&raw[..]).unwrap();
    let s = |i: i64| pprof.string_table[i as usize].as_str();
    let in_route: i64 = pprof
        .sample
        .iter()
        .filter(|x| {
            x.label
                .iter()
                .any(|l| s(l.key) == "scope" && s(l.str) == "GET /work")
        })
        .map(|x| x.value[0])
        .sum();
    let route = |s: &taskscope_wire::ProfileStack| profile.label(s) == "[uninstrumented]/GET /work";
    assert_eq!(in_route as u64, profile.samples(route));

    // The JSON report validates, and its row of the route splits the samples as the CPU time.
    let json: serde_json::Value =
        serde_json::from_str(&taskscope_report::Format::Json.render(&replayed)).unwrap();
    common::validate(taskscope_report::json::JSON_SCHEMA, &json).unwrap();
    let row = json["profile"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["scope"] == "GET /work")
        .unwrap_or_else(|| panic!("no GET /work row: {:#}", json["profile"]));
    assert_eq!(row["samples"], profile.samples(route));
    let total = |name: &str| {
        let f = row["functions"].as_array().unwrap().iter();
        let mut f = f.filter(|f| f["function"].as_str().unwrap().ends_with(name));
        f.next().map_or(0, |f| f["total_samples"].as_u64().unwrap())
    };
    let label = "[uninstrumented]/GET /work";
    assert_eq!(
        total("::checksum"),
        samples_in(profile, label, "::checksum")
    );
    assert_eq!(total("::parse"), samples_in(profile, label, "::parse"));

    // Folded stacks: the route's lines, outermost frame first, end in the two functions.
    let folded = taskscope_report::Format::Folded.render(&replayed);
    for function in ["::checksum ", "::parse "] {
        assert!(
            folded
                .lines()
                .any(|l| l.starts_with("[uninstrumented]/GET /work;") && l.contains(function)),
            "{folded}"
        );
    }
    // inferno reads the folded stacks: the flame graph has the route and both functions.
    let svg = taskscope_report::Format::FlameGraph.render(&replayed);
    for name in ["GET /work", "checksum", "parse"] {
        assert!(svg.contains(name), "{name} not in the flame graph");
    }
    let html = taskscope_report::Format::Html.render(&replayed);
    assert!(html.contains(r#"<img alt="CPU flame graph""#));
    std::fs::remove_dir_all(&dir).ok();
}
