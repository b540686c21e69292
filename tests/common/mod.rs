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
