//! `enlace alert watch`: records as the node stores them, for as long as
//! the person wants. Apart from the other commands because it is the one
//! that outlives a connection: it reconnects with backoff and resumes
//! after the last position printed.

use clap::Args;

use super::print_record;
use crate::cli::agency::{self, ClientArg, status_error, status_message};
use enlace::wire::pb::v1 as pb;

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    client: ClientArg,
    /// Also print the records already held, first.
    #[arg(long, conflicts_with = "after")]
    existing: bool,
    /// Start after this position (what a watch prints on stderr when it
    /// stops or loses the node, and each record's `position`).
    #[arg(long, value_name = "POSITION")]
    after: Option<u64>,
    /// Only records of this origin.
    #[arg(long)]
    origin: Option<String>,
    #[arg(long)]
    json: bool,
}

/// First wait before reconnecting a watch; it doubles up to [`WATCH_MAX_BACKOFF`].
const WATCH_MIN_BACKOFF: std::time::Duration = std::time::Duration::from_millis(250);
const WATCH_MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(30);

/// Why one watch stream ended.
enum WatchEnd {
    /// The person interrupted it.
    Interrupted,
    /// The node went away or closed the stream: try again.
    Lost(String),
}

/// Prints records as the node stores them, for as long as the person
/// wants: a node that restarts or a connection that drops is reconnected
/// with backoff, resuming after the last position printed; the position
/// is on stderr whenever the watch stops or loses the node, so that a
/// later `--after` resumes it. Only a refusal (role, bad filter) ends it.
pub(super) async fn watch(a: WatchArgs) -> anyhow::Result<()> {
    let cfg = agency::load(&a.client)?;
    let origin = a.origin.clone().unwrap_or_default();
    let mut after = match (a.after, a.existing) {
        (Some(p), _) => p,
        (None, true) => 0,
        // Skip what is already held: find the current end.
        (None, false) => {
            let mut c = agency::connect_with(&cfg).await?;
            let mut after = 0;
            loop {
                let page = c
                    .list_records(pb::ListRecordsRequest {
                        after_position: after,
                        limit: 1_000,
                        all_versions: true,
                        ..Default::default()
                    })
                    .await
                    .map_err(status_error)?
                    .into_inner();
                if page.last_position == after {
                    break after;
                }
                after = page.last_position;
            }
        }
    };
    eprintln!(
        "watching for records after position {after}; interrupt to stop (resume with --after POSITION)"
    );
    let mut backoff = WATCH_MIN_BACKOFF;
    loop {
        let before = after;
        let end = tokio::select! {
            end = watch_once(&cfg, &origin, &mut after, a.json) => end?,
            _ = tokio::signal::ctrl_c() => WatchEnd::Interrupted,
        };
        let reason = match end {
            WatchEnd::Interrupted => {
                eprintln!("watch stopped after position {after}; resume with --after {after}");
                return Ok(());
            }
            WatchEnd::Lost(reason) => reason,
        };
        if after != before {
            backoff = WATCH_MIN_BACKOFF;
        }
        eprintln!(
            "watch lost the node after position {after} ({reason}); reconnecting in {} ms \
             (to resume later: --after {after})",
            backoff.as_millis()
        );
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = tokio::signal::ctrl_c() => {
                eprintln!("watch stopped after position {after}; resume with --after {after}");
                return Ok(());
            }
        }
        backoff = (backoff * 2).min(WATCH_MAX_BACKOFF);
    }
}

/// One watch stream, from `after` on, advancing `after` with each record
/// printed. A refusal is an error; a lost node or stream is [`WatchEnd::Lost`].
async fn watch_once(
    cfg: &enlace::service::client::ClientConfig,
    origin: &str,
    after: &mut u64,
    json: bool,
) -> anyhow::Result<WatchEnd> {
    let mut c = match agency::connect_with(cfg).await {
        Ok(c) => c,
        Err(e) => return Ok(WatchEnd::Lost(format!("{e:#}"))),
    };
    let started = c
        .watch_records(pb::WatchRecordsRequest {
            after_position: *after,
            origin: origin.to_owned(),
        })
        .await;
    let mut stream = match started {
        Ok(s) => s.into_inner(),
        Err(s) if retryable(&s) => return Ok(WatchEnd::Lost(status_message(&s))),
        Err(s) => return Err(status_error(s)),
    };
    loop {
        match stream.message().await {
            Ok(Some(r)) => {
                print_record(&r, json);
                *after = (*after).max(r.position);
            }
            Ok(None) => return Ok(WatchEnd::Lost("the node closed the stream".into())),
            Err(s) if retryable(&s) => return Ok(WatchEnd::Lost(status_message(&s))),
            Err(s) => return Err(status_error(s)),
        }
    }
}

/// Whether a watch that failed with `s` may succeed if tried again.
fn retryable(s: &tonic::Status) -> bool {
    !matches!(
        s.code(),
        tonic::Code::PermissionDenied
            | tonic::Code::Unauthenticated
            | tonic::Code::InvalidArgument
            | tonic::Code::Unimplemented
    )
}
