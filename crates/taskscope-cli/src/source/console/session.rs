//! The gRPC session with a console-subscriber server: the update stream, the task-details
//! streams, reconnecting, and handing snapshots to the UI.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use console_api as api;

use super::settings::*;
use super::state::ConsoleState;
use crate::source::feed::{connecting, disconnected, Feed};

pub(super) async fn manage(
    addr: String,
    thresholds: Thresholds,
    feed: Sender<Feed>,
    watch: Receiver<Option<u64>>,
) {
    let mut watching = None;
    loop {
        let _ = connecting(&feed, &addr);
        let why = match session(&addr, thresholds, &feed, &watch, &mut watching).await {
            Ok(()) => return, // the UI is gone
            Err(why) => why,
        };
        if !disconnected(&feed, &addr, &why) {
            return;
        }
        let retry_at = Instant::now() + Duration::from_secs(1);
        while Instant::now() < retry_at {
            tokio::time::sleep(Duration::from_millis(50)).await;
            match watch.try_recv() {
                Ok(task) => watching = task,
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => return,
            }
        }
    }
}

type Client = api::instrument::instrument_client::InstrumentClient<tonic::transport::Channel>;

/// Why a call failed, in words (tonic's Display of a transport error hides the cause).
fn describe(status: &tonic::Status) -> String {
    let text = chain(status);
    if text.is_empty() {
        format!("{:?}", status.code())
    } else {
        text
    }
}

/// An error and its causes, `a: b: c`, without repeats.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let part = match e.downcast_ref::<tonic::Status>() {
            Some(status) => status.message().to_string(),
            None => e.to_string(),
        };
        if !part.is_empty() && !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}

/// Opens the connection and the update stream; errors say plainly when the peer is not a
/// console-subscriber server.
async fn open(
    addr: &str,
) -> Result<
    (
        Client,
        tonic::Streaming<api::instrument::Update>,
        api::instrument::Update,
    ),
    String,
> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("{addr} is not an address: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true);
    let not_console = |why: String| format!("{addr} is not a console-subscriber server: {why}");
    // TCP has its own timeout; a peer that accepts but never answers HTTP/2 is caught here.
    let channel = tokio::time::timeout(HELLO_TIMEOUT, endpoint.connect())
        .await
        .map_err(|_| {
            not_console(format!(
                "no answer to the HTTP/2 handshake in {}s",
                HELLO_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| format!("{addr}: {}", chain(&e)))?;
    let mut client = Client::new(channel).max_decoding_message_size(MAX_MESSAGE);
    let mut stream = tokio::time::timeout(
        HELLO_TIMEOUT,
        client.watch_updates(api::instrument::InstrumentRequest {}),
    )
    .await
    .map_err(|_| {
        not_console(format!(
            "no answer to the gRPC call in {}s",
            HELLO_TIMEOUT.as_secs()
        ))
    })?
    .map_err(|s| not_console(describe(&s)))?
    .into_inner();
    // The first update holds everything the app retained (an hour of history by default): it
    // can take a while to encode and send.
    let first = tokio::time::timeout(FIRST_UPDATE_TIMEOUT, stream.message())
        .await
        .map_err(|_| {
            format!(
                "{addr}: no first update in {}s",
                FIRST_UPDATE_TIMEOUT.as_secs()
            )
        })?
        .map_err(|s| format!("{addr}: {}", describe(&s)))?
        .ok_or_else(|| format!("{addr}: the stream ended before the first update"))?;
    Ok((client, stream, first))
}

enum Event {
    Update(Option<Result<api::instrument::Update, tonic::Status>>),
    Details(u64, Result<api::tasks::TaskDetails, String>),
    Tick,
}

/// One connection; `Ok` when the UI went away, `Err(why)` when the connection ended.
async fn session(
    addr: &str,
    thresholds: Thresholds,
    feed: &Sender<Feed>,
    watch: &Receiver<Option<u64>>,
    watching: &mut Option<u64>,
) -> Result<(), String> {
    let (client, mut updates, first) = open(addr).await?;
    let _ = feed.send(Feed::Status(format!("console: {addr}")));
    let mut state = ConsoleState::new(format!("console {addr}"), thresholds);
    state.apply_update(first);

    let (details_tx, mut details_rx) = tokio::sync::mpsc::channel(1024);
    let mut streams: HashMap<u64, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut last_publish = Instant::now() - PUBLISH_EVERY;
    let mut dirty = true;
    // Which details streams to have changes only with an update, a failed stream or the
    // watched task: checked then, not on every message.
    let mut reconcile = true;
    let result = loop {
        let event = tokio::select! {
            update = updates.message() => Event::Update(update.transpose()),
            Some((span, details)) = details_rx.recv() => Event::Details(span, details),
            _ = tick.tick() => Event::Tick,
        };
        match event {
            Event::Update(Some(Ok(update))) => {
                state.apply_update(update);
                dirty = true;
                reconcile = true;
            }
            Event::Update(Some(Err(status))) => break Err(describe(&status)),
            Event::Update(None) => break Err("the app closed the stream".into()),
            Event::Details(span, Ok(details)) => {
                state.apply_details(span, details);
                dirty = true;
            }
            Event::Details(span, Err(why)) => {
                state.details_failed(span, why);
                reconcile = true;
            }
            Event::Tick => {}
        }
        loop {
            match watch.try_recv() {
                Ok(task) => {
                    *watching = task;
                    reconcile = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Ok(()),
            }
        }
        if std::mem::take(&mut reconcile) {
            // Open and close task-details streams to follow what the state wants.
            open_details(&state, &client, &details_tx, &mut streams, *watching);
        }
        if dirty && last_publish.elapsed() >= PUBLISH_EVERY {
            if feed
                .send(Feed::Snapshot(Arc::new(state.snapshot())))
                .is_err()
            {
                break Ok(());
            }
            last_publish = Instant::now();
            dirty = false;
        }
    };
    for handle in streams.values() {
        handle.abort();
    }
    result
}

/// Where the details streams send what they receive, with the task's console span id.
type DetailsTx = tokio::sync::mpsc::Sender<(u64, Result<api::tasks::TaskDetails, String>)>;

/// Opens the details streams the state wants and closes the others.
fn open_details(
    state: &ConsoleState,
    client: &Client,
    details_tx: &DetailsTx,
    streams: &mut HashMap<u64, tokio::task::JoinHandle<()>>,
    watching: Option<u64>,
) {
    let wanted = state.wanted_details(watching);
    streams.retain(|span, handle| {
        let keep = wanted.contains(span) && !handle.is_finished();
        if !keep {
            handle.abort();
        }
        keep
    });
    for span in wanted {
        if streams.contains_key(&span) || state.details_given_up(span) {
            continue;
        }
        let mut client = client.clone();
        let tx = details_tx.clone();
        streams.insert(
            span,
            tokio::spawn(async move {
                let request = api::instrument::TaskDetailsRequest {
                    id: Some(api::Id { id: span }),
                };
                let mut stream = match client.watch_task_details(request).await {
                    Ok(response) => response.into_inner(),
                    Err(status) => {
                        let _ = tx.send((span, Err(describe(&status)))).await;
                        return;
                    }
                };
                loop {
                    let message = match stream.message().await {
                        Ok(Some(details)) => Ok(details),
                        Ok(None) => Err("the details stream ended".to_string()),
                        Err(status) => Err(describe(&status)),
                    };
                    let end = message.is_err();
                    if tx.send((span, message)).await.is_err() || end {
                        return;
                    }
                }
            }),
        );
    }
}
