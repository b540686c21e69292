//! The CPU profile as a flame graph: inferno's SVG of the profile's folded stacks (one root per
//! task group, or task group/scope), with inferno's script for zooming and searching when opened
//! on its own (`--format svg`); the HTML report shows it as an image, where no script runs.

use taskscope_wire::Profile;

/// The flame graph of `profile` as an SVG document, `None` when it has no samples on CPU.
pub fn svg(profile: &Profile) -> Option<String> {
    let folded = profile.folded();
    if folded.is_empty() {
        return None;
    }
    let mut options = inferno::flamegraph::Options::default();
    options.title = format!("CPU profile: {} samples at {} Hz", profile.busy, profile.hz);
    options.subtitle = Some(
        "each root is a task group (and scope, after /); width is CPU time; [outside polls] is \
         the runtime's own"
            .into(),
    );
    options.count_name = "samples".into();
    // Colours from the names, not at random: the same profile draws the same graph.
    options.deterministic = true;
    options.image_width = Some(1200);
    let mut out = Vec::new();
    inferno::flamegraph::from_lines(&mut options, folded.lines(), &mut out).ok()?;
    String::from_utf8(out).ok()
}

/// The flame graph as an `<img>` of the HTML report (a data URL: self-contained, no script
/// runs in an image), `None` when the profile has no samples on CPU.
pub fn img(profile: &Profile) -> Option<String> {
    use base64::Engine;
    let svg = svg(profile)?;
    Some(format!(
        r#"<img alt="CPU flame graph" style="max-width:100%" src="data:image/svg+xml;base64,{}">"#,
        base64::engine::general_purpose::STANDARD.encode(svg)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskscope_wire::{ProfileGroup, ProfileStack, StackFrame};

    #[test]
    fn every_stack_is_a_frame_of_the_graph_and_the_svg_is_well_formed() {
        let frame = |function: &str| StackFrame {
            function: function.into(),
            file: None,
            line: None,
        };
        let profile = Profile {
            hz: 99,
            busy: 10,
            groups: vec![ProfileGroup {
                name: "worker <1>".into(),
                location: String::new(),
            }],
            frames: vec![
                frame("app::checksum"),
                frame("app::run"),
                frame("app::parse"),
            ],
            stacks: vec![
                ProfileStack {
                    group: 0,
                    scope: None,
                    frames: vec![0, 1],
                    samples: 7,
                },
                ProfileStack {
                    group: 0,
                    scope: None,
                    frames: vec![2, 1],
                    samples: 3,
                },
            ],
            ..Profile::default()
        };
        let svg = svg(&profile).expect("a graph");
        for name in [
            "app::checksum",
            "app::parse",
            "app::run",
            "worker &lt;1&gt;",
        ] {
            assert!(svg.contains(name), "{name} missing");
        }
        // Well-formed XML from start to end.
        let mut reader = quick_xml::Reader::from_str(&svg);
        let mut depth = 0i32;
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Start(_)) => depth += 1,
                Ok(quick_xml::events::Event::End(_)) => depth -= 1,
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("not well-formed: {e}"),
            }
        }
        assert_eq!(depth, 0);
        // The HTML report's image is that document.
        use base64::Engine;
        let img = img(&profile).unwrap();
        let data = img.split("base64,").nth(1).unwrap().trim_end_matches("\">");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), svg);
        assert!(super::svg(&Profile::default()).is_none());
    }
}
