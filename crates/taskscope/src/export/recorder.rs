//! Recording files: the stream's frames appended to a file, flushed every collector tick, so a
//! crash loses at most the last tick; optionally rotated at a size cap (the previous file is
//! kept as `PATH.1`).

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use taskscope_wire::recording::RecordingWriter;
use taskscope_wire::Frame;

#[derive(Debug)]
pub(crate) struct Recorder {
    path: PathBuf,
    writer: Option<RecordingWriter<BufWriter<File>>>,
    max_bytes: Option<u64>,
    needs_key: bool,
    /// Why the recording stopped, not yet raised as a warning.
    failure: Option<String>,
}

fn open(path: &Path) -> io::Result<RecordingWriter<BufWriter<File>>> {
    RecordingWriter::new(BufWriter::new(File::create(path)?))
}

impl Recorder {
    pub(crate) fn create(path: &Path, max_bytes: Option<u64>) -> io::Result<Recorder> {
        Ok(Recorder {
            path: path.to_path_buf(),
            writer: Some(open(path)?),
            max_bytes,
            needs_key: true,
            failure: None,
        })
    }

    /// Appends this tick's frames; a new file first gets `hello` and the frames `start` makes
    /// (a key frame and what a reader needs before the first update).
    pub(crate) fn write(
        &mut self,
        hello: &Frame,
        start: impl FnOnce() -> Vec<Frame>,
        frames: &[Frame],
        at_ms: u64,
    ) {
        // Rotate before writing, so a new file always starts with frames (never left empty).
        let over = self
            .writer
            .as_ref()
            .zip(self.max_bytes)
            .is_some_and(|(w, max)| w.bytes_written() >= max);
        if over {
            self.rotate();
        }
        let Some(writer) = &mut self.writer else {
            return;
        };
        let mut result = Ok(());
        if self.needs_key {
            result = writer.write(at_ms, hello);
            for frame in start() {
                result = result.and_then(|()| writer.write(at_ms, &frame));
            }
            self.needs_key = false;
        }
        for frame in frames {
            result = result.and_then(|()| writer.write(at_ms, frame));
        }
        result = result.and_then(|()| writer.flush());
        if let Err(e) = result {
            // A full disk must not take the application down: stop recording, say so once.
            let why = format!("recording to {} stopped: {e}", self.path.display());
            tracing::error!(target: "taskscope", "{why}");
            self.failure = Some(why);
            self.writer = None;
        }
    }

    fn rotate(&mut self) {
        self.writer = None;
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        let result = std::fs::rename(&self.path, &old).and_then(|()| open(&self.path));
        match result {
            Ok(writer) => {
                self.writer = Some(writer);
                self.needs_key = true;
            }
            Err(e) => {
                let why = format!(
                    "rotating {} failed, recording stopped: {e}",
                    self.path.display()
                );
                tracing::error!(target: "taskscope", "{why}");
                self.failure = Some(why);
            }
        }
    }

    /// Why the recording stopped, once (for the exporter to raise as a warning).
    pub(crate) fn take_failure(&mut self) -> Option<String> {
        self.failure.take()
    }

    /// Flushes and syncs the file at shutdown.
    pub(crate) fn close(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            let _ = writer.flush();
            let _ = writer.get_mut().get_ref().sync_all();
        }
    }
}
