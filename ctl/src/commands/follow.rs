//! Following objects as they change, for `ctl get --watch`, `ctl wait` and
//! `ctl rollout status`: [`bosun_proto::client::Watcher`] (list once, watch
//! from the list's revision, resume a broken watch on any master, list
//! again when the history expired) on the objects of a kind chosen at run
//! time.

use bosun_proto::api::Object;
use bosun_proto::client::{Api, Watcher};
use bosun_proto::Kind;

use crate::Client;

pub use bosun_proto::client::Change;

/// The objects of one kind matching the selectors, followed.
pub type Follower = Watcher<Object>;

/// Follows objects of `kind` in `namespace` (empty: every namespace).
pub fn follow(client: &Client, kind: Kind, namespace: &str, label_selector: &str, field_selector: &str) -> Follower {
    Watcher::new(Api::dynamic(client, kind, namespace), label_selector, field_selector)
}
