//! `ctl cordon`, `ctl uncordon` (and the cordon of `ctl drain`).

use bosun_proto::api::Node;
use bosun_proto::client::{Api, PostParams};
use bosun_proto::Kind;

use super::get_object;
use crate::{Client, CtlError, Io};

/// Attempts when the node changes between read and write.
const ATTEMPTS: usize = 5;

/// Sets or clears `spec.unschedulable`.
///
/// # Errors
/// When the node does not exist or keeps changing.
pub async fn set_cordon(client: &Client, name: &str, cordon: bool, io: &mut Io<'_>) -> Result<(), CtlError> {
    let verb = if cordon { "cordoned" } else { "uncordoned" };
    for _ in 0..ATTEMPTS {
        let mut client_mut = client.clone();
        let object = get_object(&mut client_mut, Kind::Node, "", name).await?;
        let mut node = Node::try_from(object).map_err(|e| CtlError::Invalid(e.to_string()))?;
        let spec = node.spec.get_or_insert_with(Default::default);
        if spec.unschedulable == cordon {
            writeln!(io.stdout, "node/{name} already {verb}")?;
            return Ok(());
        }
        spec.unschedulable = cordon;
        let result = Api::<Node>::all(client).update(&PostParams::default(), node).await;
        match result {
            Ok(_) => {
                writeln!(io.stdout, "node/{name} {verb}")?;
                return Ok(());
            }
            Err(e) if e.code() == Some(tonic::Code::Aborted) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(CtlError::Invalid(format!("node {name:?} kept changing; try again")))
}
