//! The HTML report of the demo, opened in Chromium (headless) in a 1400 px wide window: the page
//! does not scroll sideways, every table's header row has a cell for each column of every row,
//! and each header is aligned as its column's cells are (headers over their columns). Needs `chromium` (Debian's package): skipped without it,
//! unless `TASKSCOPE_REQUIRE_BROWSER` is set, as `.ci/run` does after installing it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The page's widths and its tables' cell counts per row, as Chromium lays it out at `width`.
fn layout(html: &Path, width: u32, browser: &Path) -> serde_json::Value {
    let page = std::fs::read_to_string(html).unwrap();
    let probe = r#"<script>
const de = document.documentElement;
document.body.setAttribute('data-probe', JSON.stringify({
  scrollWidth: de.scrollWidth,
  clientWidth: de.clientWidth,
  tables: [...document.querySelectorAll('table')].map(t => [...t.rows].map(r => r.cells.length)),
  // Columns whose header is aligned otherwise than their first cell: [table, header].
  misaligned: [...document.querySelectorAll('table')].flatMap((t, i) => t.rows.length < 2 ? [] :
    [...t.rows[0].cells]
      .filter((c, j) => getComputedStyle(c).textAlign !== getComputedStyle(t.rows[1].cells[j]).textAlign)
      .map(c => [i, c.textContent])),
}));
</script>"#;
    assert!(page.contains("</body>"), "a whole page");
    let probed = html.with_extension("probe.html");
    std::fs::write(&probed, page.replace("</body>", &format!("{probe}</body>"))).unwrap();
    let profile = html.with_extension("chromium-profile");
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--window-size={width},900"),
            "--dump-dom",
            &format!("file://{}", probed.display()),
        ])
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    let probe = dom
        .split("data-probe=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| {
            panic!(
                "no probe in the DOM: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(&probe.replace("&quot;", "\"")).unwrap()
}

#[test]
fn the_html_report_fits_a_1400_px_window_with_its_headers_over_their_columns() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("TASKSCOPE_REQUIRE_BROWSER").is_none(),
            "TASKSCOPE_REQUIRE_BROWSER is set and there is no chromium"
        );
        eprintln!("no chromium: skipped");
        return;
    };
    let dir = std::env::temp_dir().join(format!("taskscope-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join("demo.html");
    let demo = Command::new(env!("CARGO_BIN_EXE_taskscope"))
        .args(["demo", "--headless", "--duration", "3s", "--report"])
        .arg(&html)
        .output()
        .expect("run the demo");
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );

    let laid_out = layout(&html, 1400, &browser);
    let (scroll, client) = (&laid_out["scrollWidth"], &laid_out["clientWidth"]);
    assert!(
        scroll.as_u64().unwrap() <= client.as_u64().unwrap(),
        "the page scrolls sideways at 1400 px: {laid_out}"
    );
    let tables = laid_out["tables"].as_array().unwrap();
    assert!(
        tables.len() >= 4,
        "warnings, task groups, locks, semaphores: {laid_out}"
    );
    for (i, rows) in tables.iter().enumerate() {
        let rows = rows.as_array().unwrap();
        let header = &rows[0];
        assert!(
            rows.iter().all(|r| r == header),
            "table {i}: rows of other widths than its header: {rows:?}"
        );
    }
    assert_eq!(
        laid_out["misaligned"],
        serde_json::json!([]),
        "headers aligned otherwise than their columns"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
