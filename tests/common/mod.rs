//! Helpers shared by the end-to-end tests.
#![allow(dead_code)] // each test binary uses its own subset

use serde_json::Value;

/// Validates `value` against a JSON Schema given as JSON text.
pub fn validate(schema: &str, value: &Value) -> Result<(), String> {
    let schema: Value = serde_json::from_str(schema).expect("the schema is JSON");
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource("schema.json", schema)
        .expect("schema resource");
    let index = compiler
        .compile("schema.json", &mut schemas)
        .expect("a valid JSON Schema");
    schemas.validate(value, index).map_err(|e| format!("{e:#}"))
}

/// The multi-thread runtime with two workers that the overhead figures use.
pub fn two_workers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Starts taskscope, waiting while another test of this binary has it running (one Guard per
/// process at a time).
pub fn exclusive(builder: impl Fn() -> taskscope::Builder) -> taskscope::Guard {
    loop {
        match builder().try_init() {
            Ok(guard) => return guard,
            Err(taskscope::Error::AlreadyRunning) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// An HTTP/1 client of the services under test (hyper's).
pub type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<hyper::body::Bytes>,
>;

/// GETs `url`, asserts a success status and returns the body.
pub async fn get_body(client: &HttpClient, url: String) -> String {
    use http_body_util::BodyExt;
    let response = client.get(url.parse().unwrap()).await.unwrap();
    assert!(response.status().is_success());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The state a recording rebuilds, as `taskscope report` and `replay` read it.
pub fn read_recording(path: &std::path::Path) -> taskscope::Snapshot {
    let mut assembler = taskscope_wire::Assembler::new();
    let read = taskscope_wire::recording::RecordingReader::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .read_all();
    for (_, frame) in read.frames {
        assembler.apply(frame);
    }
    assembler.snapshot().clone()
}
