//! `feed/process/get` and `feed/process/set`: a virtual feed's process list, which computes
//! its values when read.

use serde_json::json;
use ynni_core::catalog::FeedRow;

use super::{Call, changeable, is_virtual};
use crate::error::{ApiError, ApiResult};
use crate::reply;

/// `feed/process/<subaction>`, in emoncms's order (feed_controller.php, the write branch):
/// the feed must exist (`Feed does not exist`) and be the caller's to change (else 406), then
/// any subaction on a feed that is not virtual is answered `Feed is not Virtual`.
pub(super) async fn process(call: &Call<'_>) -> ApiResult {
    let row = changeable(call).await?;
    if !is_virtual(&row) {
        return Err(ApiError::fail("Feed is not Virtual"));
    }
    match call.route.subaction.as_str() {
        "get" => Ok(get(&row)),
        "set" => set(call, &row).await,
        // emoncms's reset fails with a PHP error (Feed::reset_processlist calls
        // set_processlist with too few arguments); ynni keeps its plain `false`.
        "reset" => Err(ApiError::False),
        // emoncms returns nothing for another subaction, which ends in its 406.
        _ => Err(ApiError::RouteNotFound { json: true }),
    }
}

/// `feed/process/get`: a virtual feed's stored list, as a JSON string.
fn get(row: &FeedRow) -> axum::response::Response {
    reply::json(json!(row.process_list))
}

/// `feed/process/set`: a virtual feed's list, validated for the virtual-feed context.
async fn set(call: &Call<'_>, row: &FeedRow) -> ApiResult {
    let feeds = call.state.catalog.feeds_for_user(row.userid).await?;
    let owned = OwnedFeeds(
        feeds
            .iter()
            .filter(|f| f.id != row.id)
            .map(|f| f.id.to_string())
            .collect(),
    );
    let list = call.params.post("processlist").unwrap_or("");
    let encoded = ynni_ingest::process::list::from_json(
        list,
        ynni_ingest::process::Context::VirtualFeed,
        &owned,
    )
    .map_err(ApiError::fail)?;
    // A list no read would compute is refused when it is saved, not at every read.
    let sources = super::data::sources_of(&encoded);
    if sources > super::data::MAX_VIRTUAL_SOURCES {
        return Err(ApiError::fail(format!(
            "A virtual feed may read at most {} feeds ({sources} given)",
            super::data::MAX_VIRTUAL_SOURCES
        )));
    }
    call.state
        .catalog
        .set_feed_process_list(row.id, &encoded)
        .await?;
    Ok(reply::json(
        json!({"success": true, "message": "Feed processlist updated", "encoded_processlist": encoded}),
    ))
}

/// A virtual feed may read the owner's other feeds (never itself) and no inputs.
struct OwnedFeeds(std::collections::HashSet<String>);

impl ynni_ingest::process::list::Ownership for OwnedFeeds {
    fn owns_feed(&self, id: &str) -> bool {
        self.0.contains(id.trim())
    }
    fn owns_input(&self, _id: &str) -> bool {
        false
    }
}
