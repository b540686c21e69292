//! Tests of the frame codec (the sample update is shared with the assembler's tests).

use super::*;
use crate::warning::WarningKind;

/// An update with one task (shared with the assembler's tests).
pub(crate) fn sample_update() -> Frame {
    let mut poll_ns = Histogram::default();
    poll_ns.record(1234);
    Frame::Update(Box::new(Update {
        at_ms: 7,
        full: true,
        tasks: vec![Task {
            id: 1,
            name: "a".into(),
            poll_ns,
            ..Task::default()
        }],
        ..Update::default()
    }))
}

#[test]
fn a_warning_kind_reaches_only_readers_of_its_version_and_later() {
    for (kind, since) in [
        (WarningKind::UnboundedSpawn, 4),
        (WarningKind::StaleUpdate, 5),
        (WarningKind::SemaphoreSaturated, 9),
    ] {
        let w = crate::warning::Warning::new(1, kind, 0, "found");
        let frame = Frame::Warning(Box::new(w));
        for version in since..=WIRE_VERSION {
            assert_eq!(
                frame.for_version(version),
                None,
                "{kind} to version {version}"
            );
        }
        for older in 1..since {
            assert_eq!(frame.for_version(older), Some(None), "{kind} to {older}");
        }
    }
}

#[test]
fn refusals_are_for_version_9_readers_only_and_round_trip() {
    let refused = crate::model::Refusals {
        client_limit: 1,
        wrong_token: 2,
        scrape_unauthorized: 3,
        ..Default::default()
    };
    let frame = Frame::Refusals(refused);
    assert_eq!(frame.for_version(8), Some(None));
    assert_eq!(frame.for_version(9), None);
    let bytes = encode(&frame);
    let decoded: Frame = postcard::from_bytes(&bytes[4..]).unwrap();
    let mut assembler = crate::Assembler::default();
    assembler.apply(decoded);
    assert_eq!(assembler.snapshot().refused, refused);
    assert_eq!(refused.total(), 6);
}

#[test]
fn detached_tasks_are_for_version_8_readers_only_and_round_trip() {
    let frame = Frame::Detached(vec![3, 9]);
    assert_eq!(frame.for_version(7), Some(None));
    assert_eq!(frame.for_version(1), Some(None));
    assert_eq!(frame.for_version(8), None);
    let bytes = encode(&frame);
    let decoded: Frame = postcard::from_bytes(&bytes[4..]).unwrap();
    let mut assembler = crate::Assembler::default();
    assembler.apply(decoded);
    assert_eq!(assembler.snapshot().detached, [3, 9]);
}

#[test]
fn a_profile_is_for_version_7_readers_only_and_round_trips() {
    let profile = crate::profile::Profile {
        hz: 99,
        busy: 3,
        ..Default::default()
    };
    let frame = Frame::Profile(Box::new(profile.clone()));
    assert_eq!(frame.for_version(6), Some(None));
    assert_eq!(frame.for_version(2), Some(None));
    assert_eq!(frame.for_version(7), None);
    let bytes = encode(&frame);
    let decoded: Frame = postcard::from_bytes(&bytes[4..]).unwrap();
    let mut assembler = crate::Assembler::default();
    assembler.apply(decoded);
    assert_eq!(assembler.snapshot().profile.as_ref(), Some(&profile));
}

#[test]
fn a_recording_stopped_warning_is_for_version_3_readers_only() {
    use crate::warning::Warning;
    let w = Warning::new(
        1,
        WarningKind::RecordingStopped,
        5,
        "recording to x stopped",
    );
    let frame = Frame::Warning(Box::new(w));
    assert_eq!(frame.for_version(2), Some(None));
    assert_eq!(frame.for_version(3), None);
    let other = Frame::Warning(Box::new(Warning::new(2, WarningKind::LongWait, 5, "w")));
    assert_eq!(other.for_version(2), None);
}

#[test]
fn frames_round_trip_through_a_byte_stream() {
    let frames = vec![
        Frame::Hello(Hello {
            version: WIRE_VERSION,
            pid: 9,
            process: "app".into(),
            start_unix_ms: 1,
        }),
        sample_update(),
        Frame::Warning(Box::new(Warning::new(3, WarningKind::Deadlock, 5, "stuck"))),
        Frame::Dropped { count: 2 },
    ];
    let mut bytes = Vec::new();
    for f in &frames {
        write_frame(&mut bytes, f).unwrap();
    }
    let mut reader = FrameReader::new(&bytes[..]);
    let mut got = Vec::new();
    while let Some(f) = reader.next_frame::<Frame>().unwrap() {
        got.push(f);
    }
    assert_eq!(got, frames);
    assert_eq!(reader.offset(), bytes.len() as u64);
}

#[test]
fn oversized_truncated_and_garbage_frames_are_errors_naming_the_offset() {
    let good = encode(&sample_update());
    // An oversized length prefix after one good frame.
    let mut bytes = good.clone();
    bytes.extend_from_slice(&(u32::MAX).to_le_bytes());
    let mut r = FrameReader::new(&bytes[..]);
    assert!(r.next_frame::<Frame>().unwrap().is_some());
    match r.next_frame::<Frame>() {
        Err(WireError::FrameTooLarge { offset, .. }) => assert_eq!(offset, good.len() as u64),
        other => panic!("{other:?}"),
    }
    // Truncated inside the body.
    let cut = &good[..good.len() - 1];
    assert!(matches!(
        FrameReader::new(cut).next_frame::<Frame>(),
        Err(WireError::Truncated { offset: 0 })
    ));
    // Truncated inside the length prefix.
    assert!(matches!(
        FrameReader::new(&good[..2]).next_frame::<Frame>(),
        Err(WireError::Truncated { offset: 0 })
    ));
    // Garbage body.
    let mut garbage = 5u32.to_le_bytes().to_vec();
    garbage.extend_from_slice(&[0xff; 5]);
    let err = FrameReader::new(&garbage[..])
        .next_frame::<Frame>()
        .unwrap_err();
    assert!(
        matches!(err, WireError::Malformed { offset: 0, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("byte 0"));
}
