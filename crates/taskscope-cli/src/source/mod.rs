//! Where the dashboard's data comes from: a live app, a recording, or the built-in demo.

use crate::app::ReplayCmd;
pub use feed::Feed;

pub mod console;
pub mod demo;
pub mod feed;
pub mod live;
pub mod replay;

/// A source the event loop polls.
#[derive(Debug)]
pub enum Source {
    /// A live stream (an instrumented app, or a console-subscriber app).
    Live(live::Live),
    /// A recording played back.
    Replay(Box<replay::Replay>),
}

impl Source {
    /// Everything new since the last call.
    pub fn poll(&mut self) -> Vec<Feed> {
        match self {
            Source::Live(live) => live.feed.try_iter().collect(),
            Source::Replay(replay) => {
                // The status after the clock moved, so that it says where the view is.
                let snapshot = replay.tick();
                let mut out = vec![Feed::Status(replay.status())];
                out.extend(snapshot.map(Feed::Snapshot));
                out
            }
        }
    }

    /// Asks a live source for the histograms of `task` (`None`: none).
    pub fn watch(&self, task: Option<u64>) {
        if let Source::Live(live) = self {
            live.watch(task);
        }
    }

    /// Asks for a task dump; false (with nothing sent) for a source that cannot dump: a
    /// recording, or a console-subscriber app.
    pub fn dump(&self) -> bool {
        match self {
            Source::Live(live) => live.dump(),
            Source::Replay(_) => false,
        }
    }

    /// Passes a replay control to a replay.
    pub fn replay(&mut self, cmd: ReplayCmd) {
        if let Source::Replay(replay) = self {
            replay.command(cmd);
        }
    }

    /// Pausing a replay stops its clock; a live source keeps receiving (the app holds the view).
    pub fn set_paused(&mut self, paused: bool) {
        if let Source::Replay(replay) = self {
            replay.paused = paused;
        }
    }
}
