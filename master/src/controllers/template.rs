//! Pod templates as the Deployment controller tells them apart: a stable
//! hash names the ReplicaSet of each template and labels its pods
//! ([`bosun_proto::workload::HASH_LABEL`]).

use bosun_proto::api::{Pod, PodTemplateSpec};
use bosun_proto::codec;

/// A short hash of `template` (and the Deployment's collision count), the
/// same on every master and every run: FNV-1a over the template's
/// canonical JSON (maps sorted), spelled as Kubernetes spells it.
pub fn hash(template: &PodTemplateSpec, collisions: i32) -> String {
    let pod: bosun_proto::api::Object = Pod {
        metadata: template.metadata.clone(),
        spec: template.spec.clone(),
        ..Default::default()
    }
    .into();
    let mut text = codec::to_json_compact(&pod);
    if collisions > 0 {
        text.push_str(&collisions.to_string());
    }
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    safe_encode(&hash.to_string())
}

/// Kubernetes' `SafeEncodeString`: no vowels (no words), no look-alikes.
fn safe_encode(text: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    text.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_proto::api::{Container, ObjectMeta, PodSpec};

    fn template(image: &str, labels: &[(&str, &str)]) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: image.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn the_hash_depends_on_the_template_only() {
        let labels = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")];
        let reversed: Vec<_> = labels.iter().rev().copied().collect();
        let one = hash(&template("i:1", &labels), 0);
        assert_eq!(one, hash(&template("i:1", &reversed), 0), "label order must not matter");
        assert_ne!(one, hash(&template("i:2", &labels), 0));
        assert_ne!(one, hash(&template("i:1", &labels), 1), "a collision changes the hash");
        assert!(bosun_proto::validate::dns1123_label(&one).is_ok(), "{one}");
    }
}
