//! The dashboard on recorded data: every view and the help overlay rendered through ratatui's
//! `TestBackend` and snapshot-tested, and the keys (sort, filter, navigation, pause, open) checked
//! against what the views then show.

mod fixture;

use std::sync::Arc;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use taskscope_cli::app::{Action, App, Column, View};
use taskscope_cli::screenshot::{render, text};

fn app() -> App {
    let mut app = App::new("replay of a fixture");
    app.update(Arc::new(fixture::snapshot()));
    app
}

fn key(app: &mut App, code: KeyCode) -> Action {
    app.on_key(KeyEvent::from(code))
}

fn screen(app: &App) -> String {
    text(&render(app, 120, 30))
}

#[test]
fn every_view_renders() {
    let mut app = app();
    app.task = Some(5);
    for view in View::ALL {
        app.view = view;
        insta::assert_snapshot!(
            format!("view_{}", view.title().to_lowercase()),
            screen(&app)
        );
    }
    app.view = View::Overview;
    app.help = true;
    insta::assert_snapshot!("help_overlay", screen(&app));
}

#[test]
fn the_profile_view_shows_the_selected_groups_functions() {
    let mut app = app();
    key(&mut app, KeyCode::Char('9'));
    assert_eq!(app.view, View::Profile);
    let first = screen(&app);
    // The route first (700 of 1,000 samples), its functions by total share.
    assert!(first.contains("[uninstrumented]/GET /report"), "{first}");
    assert!(
        first.contains("Functions of [uninstrumented]/GET /report (700 samples)"),
        "{first}"
    );
    assert!(first.contains("100.0%"), "{first}");
    for (total, function) in [
        ("100.0%", "server::report_handler"),
        ("40.0%", "flate2::deflate::compress"),
    ] {
        let row = first
            .lines()
            .find(|l| l.contains(function))
            .unwrap_or_else(|| panic!("{first}"));
        assert!(row.contains(total), "{row}");
    }
    key(&mut app, KeyCode::Char('j'));
    let second = screen(&app);
    assert!(
        second.contains("Functions of session-touch (300 samples)"),
        "{second}"
    );
    assert!(second.contains("server::hash_session"), "{second}");
    assert!(!second.contains("flate2::deflate::compress"), "{second}");
    // Without a profile, the view says how to get one.
    let mut bare = App::new("no profile");
    bare.update(Arc::new(taskscope_wire::Snapshot::default()));
    key(&mut bare, KeyCode::Char('9'));
    assert!(screen(&bare).contains("TASKSCOPE_PROFILE_HZ=99"));
}

#[test]
fn tasks_sort_by_any_column_and_invert() {
    let mut app = app();
    key(&mut app, KeyCode::Char('2'));
    assert_eq!((app.sort, app.descending), (Column::Busy, true));
    // The long poll makes task 5 the busiest.
    assert_eq!(app.tasks().next().unwrap().id, 5);
    assert!(screen(&app).contains("Busy▼"));
    key(&mut app, KeyCode::Char('h')); // previous column: Polls
    assert_eq!(app.sort, Column::Polls);
    let polls: Vec<u64> = app.tasks().map(|t| t.polls).collect();
    assert!(polls.windows(2).all(|w| w[0] >= w[1]), "{polls:?}");
    key(&mut app, KeyCode::Char('i'));
    let polls: Vec<u64> = app.tasks().map(|t| t.polls).collect();
    assert!(polls.windows(2).all(|w| w[0] <= w[1]), "{polls:?}");
    assert!(screen(&app).contains("Polls▲"));
    for _ in 0..Column::ALL.len() {
        key(&mut app, KeyCode::Right);
    }
    assert_eq!(
        app.sort,
        Column::Polls,
        "sorting cycles through every column"
    );
}

#[test]
fn filter_narrows_and_escape_clears() {
    let mut app = app();
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char('/'));
    for c in "accept".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.task_count(), 4);
    assert!(app.tasks().all(|t| t.name.starts_with("accept-loop")));
    let shown = screen(&app);
    assert!(
        shown.contains("Tasks (4 shown of 12)") && !shown.contains("handler-1 "),
        "{shown}"
    );
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.task_count(), 12);
}

#[test]
fn navigation_open_and_back_ask_for_details() {
    let mut app = app();
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Down);
    assert_eq!(app.selected(), 2);
    key(&mut app, KeyCode::Char('G'));
    assert_eq!(app.selected(), 11);
    key(&mut app, KeyCode::Char('g'));
    key(&mut app, KeyCode::Char('g'));
    assert_eq!(app.selected(), 0);
    let id = app.tasks().next().unwrap().id;
    assert_eq!(key(&mut app, KeyCode::Enter), Action::Watch(Some(id)));
    assert_eq!(app.view, View::Task);
    assert!(screen(&app).contains(&format!("Task {id} `handler-4`")));
    assert_eq!(key(&mut app, KeyCode::Esc), Action::Watch(None));
    assert_eq!(app.view, View::Tasks);
    // From a warning to its task.
    key(&mut app, KeyCode::Char('6'));
    assert_eq!(
        key(&mut app, KeyCode::Enter),
        Action::Watch(Some(5)),
        "newest warning first: the blocked worker"
    );
}

#[test]
fn pause_keeps_the_view_and_ignores_key_releases() {
    let mut app = app();
    key(&mut app, KeyCode::Char(' '));
    assert!(app.paused && screen(&app).contains("PAUSED"));
    let mut later = fixture::snapshot();
    later.taken_at_ms = 9_000;
    later.tasks.truncate(1);
    app.update(Arc::new(later.clone()));
    assert_eq!(
        app.snapshot.taken_at_ms, 3_000,
        "paused: the new snapshot waits"
    );
    key(&mut app, KeyCode::Char('p'));
    app.update(Arc::new(later));
    assert_eq!(app.snapshot.taken_at_ms, 9_000);
    let release = KeyEvent {
        kind: KeyEventKind::Release,
        ..KeyEvent::from(KeyCode::Char('q'))
    };
    assert_eq!(app.on_key(release), Action::None);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app.on_key(ctrl_c), Action::Quit);
    assert_eq!(key(&mut app, KeyCode::Char('q')), Action::Quit);
}

#[test]
fn states_are_coloured_and_long_polls_highlighted() {
    use ratatui::style::Color;
    let mut app = app();
    key(&mut app, KeyCode::Char('2'));
    let buffer = render(&app, 120, 30);
    let find = |needle: &str| {
        let t = text(&buffer);
        let (y, line) = t
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains(needle))
            .expect(needle);
        let x = line[..line.find(needle).unwrap()].chars().count() as u16;
        buffer[(x, y as u16)].clone()
    };
    assert_eq!(find("running").fg, Color::Green);
    assert_eq!(find("scheduled").fg, Color::Cyan);
    assert_eq!(find("200.0ms").fg, Color::Red, "the 200 ms poll stands out");
    key(&mut app, KeyCode::Char('6'));
    let buffer = render(&app, 120, 30);
    let t = text(&buffer);
    let (y, line) = t
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("deadlock "))
        .unwrap();
    let x = line.find("deadlock").unwrap() as u16;
    assert_eq!(buffer[(x, y as u16)].fg, Color::Red, "deadlocks stand out");
}

#[test]
fn tiny_and_resized_terminals_do_not_panic() {
    let app = app();
    for (w, h) in [(1, 1), (10, 3), (19, 5), (20, 6), (40, 10), (300, 100)] {
        let buffer = render(&app, w, h);
        assert_eq!(buffer.area.width, w);
    }
    assert!(text(&render(&app, 10, 3)).contains("taskscope"));
}

#[test]
fn warnings_fold_repeats_filter_and_show_the_selected_one_in_full() {
    let mut snap = fixture::snapshot();
    let blocked = snap
        .warnings
        .iter()
        .find(|w| w.kind == taskscope_wire::WarningKind::BlockedWorker)
        .unwrap()
        .clone();
    // The same handler blocks again and again: 40 more warnings of one cause.
    for i in 0..40u64 {
        let mut again = blocked.clone();
        again.id = 100 + i;
        again.at_ms = 3_000 + i * 10;
        again.ongoing = false;
        again.duration_ns = Some(if i == 7 { 900_000_000 } else { 50_000_000 });
        snap.warnings.push(again);
    }
    let mut app = App::new("replay of a fixture");
    app.update(Arc::new(snap));
    key(&mut app, KeyCode::Char('6'));
    let shown = screen(&app);
    insta::assert_snapshot!("warnings_folded", shown);
    // One row for 41 blocks; the inversion and the deadlock still in sight.
    assert!(shown.contains("×41 "), "{shown}");
    assert!(
        shown.contains("lock_order_inversion") && shown.contains("deadlock"),
        "{shown}"
    );
    assert!(
        shown.contains("41 times since 1.5s, the longest 900.0ms"),
        "{shown}"
    );
    // `/` filters the warnings too.
    app.set_filter("taken in both");
    let shown = screen(&app);
    assert!(shown.contains("lock_order_inversion"), "{shown}");
    assert!(!shown.contains("blocked_worker"), "{shown}");
    assert!(shown.contains("matching `taken in both`"), "{shown}");
}

#[test]
fn the_header_says_how_many_peers_the_app_refused() {
    assert!(
        !screen(&app()).contains("refused"),
        "none refused, nothing said"
    );
    let mut snap = fixture::snapshot();
    snap.refused.wrong_token = 2;
    snap.refused.hello_limit = 1;
    let mut app = App::new("live");
    app.update(Arc::new(snap));
    let header: String = screen(&app).lines().take(3).collect();
    assert!(header.contains("refused: 3 peers"), "{header}");
}

#[test]
fn a_semaphore_whose_total_was_never_seen_shows_a_question_mark_not_zero() {
    let mut app = app();
    app.view = View::Semaphores;
    assert!(screen(&app).contains("0/4"), "{}", screen(&app));
    // As console-subscriber shows a `Semaphore::new(2)` that was never free while watched.
    let mut snap = fixture::snapshot();
    snap.semaphores[0].permits = 0;
    let mut app = App::new("console");
    app.update(Arc::new(snap));
    app.view = View::Semaphores;
    let shown = screen(&app);
    assert!(shown.contains("0/?") && !shown.contains("0/0"), "{shown}");
}

#[test]
fn a_long_status_wraps_in_the_header_instead_of_being_cut() {
    let hint = "disconnected: 127.0.0.1:6669 is not a taskscope stream (no hello) (an app \
                instrumented with console-subscriber? `taskscope console 127.0.0.1:6669`, or \
                report from console://127.0.0.1:6669); retrying";
    let mut app = App::new(hint);
    app.update(Arc::new(fixture::snapshot()));
    let shown = text(&render(&app, 80, 30));
    let header: String = shown.lines().take(4).collect::<Vec<_>>().join(" ");
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words(&header).contains("or report from console://127.0.0.1:6669); retrying"),
        "{shown}"
    );
    // The view below still has its rows.
    assert!(shown.contains("Task groups"), "{shown}");
}

#[test]
fn the_dump_view_groups_tasks_by_where_they_wait_and_the_task_view_shows_it() {
    let mut app = app();
    assert_eq!(key(&mut app, KeyCode::Char('d')), Action::Dump);
    key(&mut app, KeyCode::Char('8'));
    assert_eq!(app.view, View::Dump);
    assert!(screen(&app).contains("press d"), "{}", screen(&app));
    app.set_dump(Arc::new(fixture::dump()));
    let shown = screen(&app);
    insta::assert_snapshot!("view_dump_grouped", shown);
    // Nine handlers on one `.await` are one row, first; the pane has their chain and lock.
    assert!(shown.contains("handler ×9"), "{shown}");
    assert!(shown.contains("11 tasks in 3 places"), "{shown}");
    assert!(
        shown.contains("waiting for mutex `a` (asked at src/server.rs:31:20), held by task 10"),
        "{shown}"
    );
    assert!(
        shown.contains("in server::load_session (src/server.rs:31)"),
        "{shown}"
    );
    // The worker's select! has two branches.
    key(&mut app, KeyCode::Char('G'));
    let shown = screen(&app);
    assert!(shown.contains("branch 2:"), "{shown}");
    // The Task view of a dumped task says where it waits.
    app.task = Some(10);
    app.view = View::Task;
    let shown = screen(&app);
    assert!(shown.contains("Waiting at (dump at 2.9s"), "{shown}");
    assert!(
        shown.contains("in server::backend_call (src/server.rs:52)"),
        "{shown}"
    );
}

#[test]
fn a_deadlocks_detail_says_where_each_of_its_tasks_waits() {
    let mut app = app();
    key(&mut app, KeyCode::Char('6'));
    let rows = app.warning_rows();
    let deadlock = rows
        .iter()
        .position(|r| r.latest.kind == taskscope_wire::WarningKind::Deadlock)
        .unwrap();
    for _ in 0..deadlock {
        key(&mut app, KeyCode::Char('j'));
    }
    let shown = screen(&app);
    assert!(
        shown.contains("task 2 `handler-1` waits in server::load_session (src/server.rs:31)"),
        "{shown}"
    );
    assert!(
        shown.contains("← server::handle (src/server.rs:12)"),
        "{shown}"
    );
    assert!(shown.contains("Fix: "), "{shown}");
}

#[test]
fn the_spawn_tree_nests_tasks_under_their_parents_and_collapses() {
    let mut snapshot = fixture::snapshot();
    // 1 spawned 2, 3 and 4; 2 spawned 5 and 6; 6 spawned 7; the rest have no parent shown.
    for (child, parent) in [(2, 1), (3, 1), (4, 1), (5, 2), (6, 2), (7, 6)] {
        snapshot.tasks[child - 1].parent = Some(parent as u64);
    }
    for t in snapshot.tasks.iter_mut().skip(7) {
        t.parent = None;
    }
    // 6's handle was dropped: its subtree is detached.
    snapshot.detached = vec![6];
    let mut app = App::new("replay of a fixture");
    app.update(Arc::new(snapshot));
    app.view = View::Tasks;
    app.sort = Column::Id;
    app.descending = false;
    app.update(app.snapshot.clone());
    key(&mut app, KeyCode::Char('t'));
    assert!(app.tree);
    let ids: Vec<u64> = app.tasks().map(|t| t.id).collect();
    assert_eq!(ids, [1, 2, 5, 6, 7, 3, 4, 8, 9, 10, 11, 12]);
    let shown = screen(&app);
    assert!(shown.contains("spawn tree"), "{shown}");
    let root = shown.lines().find(|l| l.contains("accept-loop-0")).unwrap();
    // 1 has six tasks below it; 4 of the 6 are alive (tasks 4 and 8 of the fixture are done).
    assert!(root.contains("▾ accept-loop-0 +6 (5 alive)"), "{root}");
    // Task 7 (`accept-loop-6`) under 6 (`handler-5`) under 2: indented twice as deep as 2.
    let line = |name: &str| {
        shown
            .lines()
            .find(|l| l.contains(name))
            .unwrap()
            .to_string()
    };
    assert!(line("handler-1 ").contains("  ▾ handler-1 +3"), "{shown}");
    assert!(
        line("handler-5 ").contains("    ▾ ⇥handler-5 +1 (1 alive)"),
        "{shown}"
    );
    assert!(
        shown.contains("⇥ detached (its JoinHandle dropped)"),
        "{shown}"
    );
    assert!(
        line("accept-loop-6").contains("         accept-loop-6"),
        "{shown}"
    );
    insta::assert_snapshot!("view_tasks_tree", shown);

    // Collapse task 2: 5, 6 and 7 go; its counts stay.
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('c'));
    let ids: Vec<u64> = app.tasks().map(|t| t.id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 8, 9, 10, 11, 12]);
    let shown = screen(&app);
    let two = shown.lines().find(|l| l.contains("handler-1 ")).unwrap();
    assert!(two.contains("▸ handler-1 +3 ("), "{two}");
    // Expanded again, and back to the flat list, the selection on the same task.
    key(&mut app, KeyCode::Char('c'));
    assert_eq!(app.task_count(), 12);
    key(&mut app, KeyCode::Char('t'));
    assert!(!app.tree);
    assert_eq!(app.tasks().nth(app.selected()).unwrap().id, 2);
    // The Task view says so too.
    app.task = Some(6);
    app.view = View::Task;
    let shown = screen(&app);
    assert!(
        shown.contains("detached (its JoinHandle was dropped)"),
        "{shown}"
    );
}
