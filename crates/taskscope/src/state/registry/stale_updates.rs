//! `stale_update`: a read-modify-write of a lock's value split by an `.await`, with another
//! writer in between (detected by the guards, `sync::held`). One warning per lock and pair of
//! sites, counting repeats.

use std::panic::Location;

use taskscope_wire::{Warning, WarningKind};

use super::Registry;
use crate::base::clock;
use crate::base::location::format_location;
use crate::state::shared::{Shared, StaleUpdate};

impl Registry {
    /// Raises `stale_update` for the lock and the task's read and write sites, or counts one
    /// more on the warning already raised for them.
    pub(super) fn stale_update(&mut self, shared: &Shared, update: &StaleUpdate) {
        let address = |l: &'static Location<'static>| l as *const Location<'static> as usize;
        let key = (
            update.lock,
            address(update.read_at),
            address(update.write_at),
        );
        let lock = self.lock_name(update.lock);
        let who = self.who(update.task);
        let other = match update.other {
            0 => "code outside instrumented tasks".to_string(),
            // Usually a task of the same group: say it is another one.
            task => match self.who(task) {
                same if same == who => format!("another {same}"),
                other => other,
            },
        };
        let other = match update.other_at {
            Some(at) if update.other != 0 => format!("{other} (at {})", format_location(at)),
            _ => other,
        };
        if let Some(w) = self
            .stale_updates
            .get(&key)
            .and_then(|&id| self.warnings.get_mut(id))
        {
            let count = w.count.unwrap_or(1) + 1;
            w.count = Some(count);
            w.message = message(&lock, &who, update, &other, count);
            if !w.tasks.contains(&update.task) && w.tasks.len() < 16 {
                w.tasks.push(update.task);
            }
            return;
        }
        let mut w = Warning::new(
            0,
            WarningKind::StaleUpdate,
            shared.ms_at(clock::now()),
            message(&lock, &who, update, &other, 1),
        );
        w.task = (update.task != 0).then_some(update.task);
        w.task_name = self.describe(update.task).map(|(name, _, _)| name);
        w.location = Some(format_location(update.write_at));
        w.locks = vec![lock];
        w.tasks = [update.task, update.other]
            .into_iter()
            .filter(|&t| t != 0)
            .collect();
        w.count = Some(1);
        let id = self.warnings.raise(w);
        self.stale_updates.insert(key, id);
    }
}

fn message(lock: &str, who: &str, update: &StaleUpdate, other: &str, count: u64) -> String {
    let times = if count > 1 {
        format!(" ({count} times)")
    } else {
        String::new()
    };
    format!(
        "{who} read lock `{lock}` at {}, {}then wrote it at {} without reading it again, while {other} wrote it in between{times}: if the value written was computed from the earlier read, that update is lost",
        format_location(update.read_at),
        if update.awaited { "awaited, " } else { "" },
        format_location(update.write_at),
    )
}
