//! A recording as a source: plays it back against the wall clock, with pause, step, seek and
//! speed. Seeking back replays from the start (state is rebuilt from the frames).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use taskscope_wire::recording::RecordingReader;
use taskscope_wire::{Assembler, Frame, Snapshot};

use crate::app::ReplayCmd;

#[derive(Debug)]
/// A recording played back against the wall clock, with pause, step, seek and speed.
pub struct Replay {
    frames: Vec<(u64, Frame)>,
    /// Frames applied so far.
    next: usize,
    asm: Assembler,
    /// Recording time shown now, ms.
    pub position_ms: u64,
    /// Playback speed (1.0: real time).
    pub speed: f64,
    /// Whether playback is paused.
    pub paused: bool,
    last_tick: Instant,
    /// Set when the file ended early (truncated or damaged): where and why.
    pub stopped: Option<String>,
    changed: bool,
}

impl Replay {
    /// Opens a recording; a damaged one plays every intact record, and `stopped` names the
    /// damage.
    pub fn open(path: &Path) -> anyhow::Result<Replay> {
        let reader = RecordingReader::open(path)
            .with_context(|| format!("cannot replay {}", path.display()))?;
        let rec = reader.read_all();
        let damage = damage_note(&rec);
        if rec.frames.is_empty() {
            anyhow::bail!(
                "{} holds no readable frame ({})",
                path.display(),
                damage.as_deref().unwrap_or("it has no record")
            );
        }
        Ok(Replay::from_frames(rec.frames, damage))
    }

    /// A replay of frames already read (`stopped`: why the file ended early, if it did).
    pub fn from_frames(frames: Vec<(u64, Frame)>, stopped: Option<String>) -> Replay {
        let mut replay = Replay {
            frames,
            next: 0,
            asm: Assembler::new(),
            position_ms: 0,
            speed: 1.0,
            paused: false,
            last_tick: Instant::now(),
            stopped,
            changed: true,
        };
        replay.advance_to(0);
        replay
    }

    /// The end of the recording, ms.
    pub fn duration_ms(&self) -> u64 {
        self.frames.last().map_or(0, |(t, _)| *t)
    }

    fn advance_to(&mut self, ms: u64) {
        if ms < self.position_ms || self.next == 0 && ms == 0 && self.asm.hello.is_none() {
            self.asm = Assembler::new();
            self.next = 0;
        }
        while let Some((at, frame)) = self.frames.get(self.next) {
            if *at > ms && self.next > 0 {
                break;
            }
            self.asm.apply(frame.clone());
            self.next += 1;
        }
        self.position_ms = ms.min(self.duration_ms());
        self.changed = true;
    }

    /// Moves the playback clock; returns the state when it changed.
    pub fn tick(&mut self) -> Option<Arc<Snapshot>> {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last_tick);
        self.last_tick = now;
        if !self.paused && self.position_ms < self.duration_ms() {
            let target = self.position_ms + (elapsed.as_secs_f64() * 1000.0 * self.speed) as u64;
            self.advance_to(target);
        }
        std::mem::take(&mut self.changed).then(|| Arc::new(self.asm.snapshot().clone()))
    }

    /// Applies a replay control.
    pub fn command(&mut self, cmd: ReplayCmd) {
        match cmd {
            ReplayCmd::Step => {
                // To the next update frame.
                let next_update = self.frames[self.next..]
                    .iter()
                    .find(|(_, f)| matches!(f, Frame::Update(_)));
                if let Some(&(at, _)) = next_update {
                    self.advance_to(at);
                }
            }
            ReplayCmd::Seek(delta) => {
                let target =
                    (self.position_ms as i64 + delta).clamp(0, self.duration_ms() as i64) as u64;
                self.advance_to(target);
            }
            ReplayCmd::Faster => self.speed = (self.speed * 2.0).min(64.0),
            ReplayCmd::Slower => self.speed = (self.speed / 2.0).max(0.125),
        }
    }

    /// The status line: position, length, speed, playing, paused or at the end, where the file
    /// ended early.
    pub fn status(&self) -> String {
        let state = if self.position_ms >= self.duration_ms() {
            "end of recording"
        } else if self.paused {
            "paused"
        } else {
            "playing"
        };
        let mut s = format!(
            "replay {:.1}s / {:.1}s ×{} {state}",
            self.position_ms as f64 / 1000.0,
            self.duration_ms() as f64 / 1000.0,
            self.speed
        );
        if let Some(stopped) = &self.stopped {
            s.push_str(" · ");
            s.push_str(stopped);
        }
        s
    }

    /// The state at the end of the recording (what `taskscope report` reads).
    pub fn final_snapshot(&mut self) -> Snapshot {
        self.advance_to(self.duration_ms());
        self.asm.snapshot().clone()
    }
}

/// What a damaged recording lost: the spans skipped (the first three named) and where it stops
/// being readable, if it does.
fn damage_note(rec: &taskscope_wire::recording::Recording) -> Option<String> {
    let mut parts: Vec<String> = rec
        .skipped
        .iter()
        .take(3)
        .map(|s| {
            format!(
                "skipped {} damaged bytes at byte {} ({})",
                s.len, s.offset, s.error
            )
        })
        .collect();
    if rec.skipped.len() > 3 {
        parts.push(format!("and {} more damaged spans", rec.skipped.len() - 3));
    }
    if let Some(s) = &rec.stopped {
        parts.push(format!(
            "the recording stops being readable at byte {}: {}",
            s.offset, s.error
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}
