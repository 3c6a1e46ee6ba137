//! The arithmetic of a rolling update, on counts only (Kubernetes'
//! `rolling.go`): how far the new ReplicaSet may grow and how far the old
//! ones may shrink while staying within `maxSurge` and `maxUnavailable`.

use bosun_proto::api::{int_or_string, DeploymentStrategy, IntOrString};

/// The bounds of a rolling update in pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Pods allowed above `replicas`.
    pub surge: i32,
    /// Pods allowed to be unavailable below `replicas`.
    pub unavailable: i32,
}

/// `maxSurge` rounds up and `maxUnavailable` down, as in Kubernetes; both
/// zero would stall, so `maxUnavailable` becomes 1 then.
pub fn limits(strategy: Option<&DeploymentStrategy>, replicas: i32) -> Limits {
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let surge = scaled(rolling.and_then(|r| r.max_surge.as_ref()), replicas, true, 25);
    let unavailable = scaled(rolling.and_then(|r| r.max_unavailable.as_ref()), replicas, false, 25);
    if surge == 0 && unavailable == 0 {
        return Limits { surge, unavailable: 1 };
    }
    Limits { surge, unavailable }
}

/// An int-or-percent of `total`; unset means `default_percent`.
fn scaled(value: Option<&IntOrString>, total: i32, round_up: bool, default_percent: i64) -> i32 {
    let percent = |p: i64| {
        let product = p * i64::from(total);
        let value = if round_up { (product + 99) / 100 } else { product / 100 };
        i32::try_from(value).unwrap_or(i32::MAX)
    };
    match value.and_then(|v| v.value.as_ref()) {
        Some(int_or_string::Value::IntValue(n)) => (*n).max(0),
        Some(int_or_string::Value::StrValue(text)) => text
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<i64>().ok())
            .map_or(0, |p| percent(p.max(0))),
        None => percent(default_percent),
    }
}

/// One ReplicaSet as the rollout sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// `spec.replicas`.
    pub replicas: i32,
    /// Its pods available now.
    pub available: i32,
}

/// The size the new ReplicaSet may grow to: towards `replicas`, never
/// taking the total of every ReplicaSet's `replicas` above
/// `replicas + surge`.
pub fn new_size(replicas: i32, limits: Limits, total: i32, new: i32) -> i32 {
    if new >= replicas {
        return replicas;
    }
    let room = replicas + limits.surge - total;
    if room <= 0 {
        return new;
    }
    new + room.min(replicas - new)
}

/// The sizes the old ReplicaSets (oldest first) may shrink to, keeping at
/// least `replicas - unavailable` pods available: unhealthy pods go first
/// (they count for nothing), then available ones down to the minimum.
pub fn old_sizes(replicas: i32, limits: Limits, new: Counts, old: &[Counts]) -> Vec<i32> {
    let mut sizes: Vec<i32> = old.iter().map(|c| c.replicas).collect();
    let min_available = replicas - limits.unavailable;
    let total: i32 = new.replicas + sizes.iter().sum::<i32>();
    let new_unavailable = (new.replicas - new.available).max(0);
    let mut budget = total - min_available - new_unavailable;
    if budget <= 0 {
        return sizes;
    }
    for (size, counts) in sizes.iter_mut().zip(old) {
        let unhealthy = (*size - counts.available).max(0);
        let cut = unhealthy.min(budget);
        *size -= cut;
        budget -= cut;
    }
    let available: i32 = new.available + old.iter().zip(&sizes).map(|(c, s)| c.available.min(*s)).sum::<i32>();
    let mut surplus = available - min_available;
    for size in &mut sizes {
        if surplus <= 0 {
            break;
        }
        let cut = (*size).min(surplus);
        *size -= cut;
        surplus -= cut;
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_proto::api::RollingUpdateDeployment;

    fn strategy(surge: &str, unavailable: &str) -> DeploymentStrategy {
        let value = |text: &str| IntOrString {
            value: Some(match text.parse::<i32>() {
                Ok(n) => int_or_string::Value::IntValue(n),
                Err(_) => int_or_string::Value::StrValue(text.to_string()),
            }),
        };
        DeploymentStrategy {
            r#type: "RollingUpdate".into(),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(value(surge)),
                max_unavailable: Some(value(unavailable)),
            }),
        }
    }

    #[test]
    fn limits_round_like_kubernetes() {
        let cases = [
            (("25%", "25%"), 4, (1, 1)),
            (("25%", "25%"), 10, (3, 2)),
            (("25%", "25%"), 1, (1, 0)),
            (("0", "0"), 5, (0, 1)),
            (("2", "50%"), 5, (2, 2)),
            (("100%", "0"), 3, (3, 0)),
        ];
        for ((surge, unavailable), replicas, (want_surge, want_unavailable)) in cases {
            let got = limits(Some(&strategy(surge, unavailable)), replicas);
            assert_eq!(
                (got.surge, got.unavailable),
                (want_surge, want_unavailable),
                "{surge}/{unavailable} of {replicas}"
            );
        }
        assert_eq!(
            limits(None, 4),
            Limits {
                surge: 1,
                unavailable: 1
            }
        );
    }

    #[test]
    fn the_new_set_grows_within_the_surge() {
        let l = Limits {
            surge: 1,
            unavailable: 1,
        };
        assert_eq!(new_size(4, l, 4, 0), 1);
        assert_eq!(new_size(4, l, 5, 1), 1, "at replicas + surge already");
        assert_eq!(new_size(4, l, 3, 1), 3);
        assert_eq!(new_size(4, l, 0, 0), 4, "nothing old: straight to replicas");
        assert_eq!(new_size(4, l, 8, 6), 4, "too big shrinks to replicas");
    }

    #[test]
    fn old_sets_shrink_keeping_the_minimum_available() {
        let l = Limits {
            surge: 1,
            unavailable: 1,
        };
        let old = [Counts {
            replicas: 4,
            available: 4,
        }];
        // New set of 1 not yet available: only the unavailable allowance.
        assert_eq!(
            old_sizes(
                4,
                l,
                Counts {
                    replicas: 1,
                    available: 0
                },
                &old
            ),
            vec![3]
        );
        // New set available: the old one may lose two.
        assert_eq!(
            old_sizes(
                4,
                l,
                Counts {
                    replicas: 1,
                    available: 1
                },
                &old
            ),
            vec![2]
        );
        // Unhealthy old pods go first, within the budget (5 - 3 - 0).
        let sick = [Counts {
            replicas: 4,
            available: 1,
        }];
        assert_eq!(
            old_sizes(
                4,
                l,
                Counts {
                    replicas: 1,
                    available: 1
                },
                &sick
            ),
            vec![2]
        );
        // Oldest first across several.
        let two = [
            Counts {
                replicas: 2,
                available: 2,
            },
            Counts {
                replicas: 2,
                available: 2,
            },
        ];
        assert_eq!(
            old_sizes(
                4,
                l,
                Counts {
                    replicas: 2,
                    available: 2
                },
                &two
            ),
            vec![0, 1]
        );
    }

    /// Simulates a whole rollout where pods become available at once and
    /// checks the bounds hold at every step.
    #[test]
    fn a_simulated_rollout_stays_within_bounds_and_finishes() {
        for (replicas, surge, unavailable) in [(4, "25%", "25%"), (10, "3", "0"), (5, "0", "2"), (1, "1", "0")] {
            let l = limits(Some(&strategy(surge, unavailable)), replicas);
            let (mut new, mut old) = (0, replicas);
            for _ in 0..100 {
                new = new_size(replicas, l, new + old, new);
                assert!(new + old <= replicas + l.surge);
                assert!(old + new.min(replicas) >= replicas - l.unavailable);
                old = old_sizes(
                    replicas,
                    l,
                    Counts {
                        replicas: new,
                        available: new,
                    },
                    &[Counts {
                        replicas: old,
                        available: old,
                    }],
                )[0];
                assert!(
                    new + old >= replicas - l.unavailable,
                    "{replicas} {surge} {unavailable}"
                );
                if new == replicas && old == 0 {
                    break;
                }
            }
            assert_eq!((new, old), (replicas, 0));
        }
    }
}
