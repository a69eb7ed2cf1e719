//! `feed/process/get` and `feed/process/set`: a virtual feed's process list, which computes
//! its values when read.

use serde_json::json;
use ynni_core::catalog::FeedRow;

use super::{Call, is_virtual};
use crate::error::{ApiError, ApiResult};
use crate::reply;

/// The caller's own feed named by `id` (for changes).
async fn own_feed(call: &Call<'_>) -> Result<Option<FeedRow>, ApiError> {
    let Some(caller) = call.caller.filter(|c| c.write) else {
        return Ok(None);
    };
    let Some(id) = call
        .params
        .get("id")
        .and_then(|i| i.trim().parse::<i64>().ok())
    else {
        return Ok(None);
    };
    let row = call.state.catalog.feed_by_id(id).await?;
    Ok(row.filter(|r| r.userid == caller.user.id))
}

/// `feed/process/get`: a virtual feed's stored list.
pub(super) async fn get(call: &Call<'_>) -> ApiResult {
    let row = own_feed(call).await?.ok_or(ApiError::False)?;
    Ok(reply::json(json!(row.process_list)))
}

/// `feed/process/set`: a virtual feed's list, validated for the virtual-feed context.
pub(super) async fn set(call: &Call<'_>) -> ApiResult {
    let row = own_feed(call).await?.ok_or(ApiError::False)?;
    if !is_virtual(&row) {
        return Err(ApiError::fail(
            "Only virtual feeds have a process list in ynni",
        ));
    }
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
