//! A scenario's fault timeline: timed steps, each an action and, when it
//! ends, its undoing.
//!
//! The JSON (and TOML) shape is
//! `{"at": "10s", "duration": "20s", "action": {"type": "link_down", "link": "orders->payments"}}`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::provider::ProviderFaults;
use crate::service::Service;
use crate::toxic::ToxicSpec;

/// One timed fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultStep {
    /// When to apply it, from the start of the measured load ("10s").
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// How long it lasts; without one it stays until the final heal.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
    pub action: FaultAction,
}

/// What a step does, and what undoing it means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultAction {
    /// Add a toxic to a link (`caller->callee`); undo removes exactly that
    /// toxic, by its name.
    Toxic { link: String, toxic: ToxicSpec },
    /// Take a link down (connections refused and closed); undo brings it
    /// up.
    LinkDown { link: String },
    /// Kill a service where it stands; undo restarts it on the same port
    /// and database.
    Crash { service: Service },
    /// Change the provider's behaviour; undo restores what it was.
    Provider { faults: ProviderFaults },
    /// Stop a consumer group fetching (it stays in the group); undo
    /// resumes it. Groups are named after their service.
    PauseConsumer { group: Service },
    /// Publish `count` undecodable messages to `topic`; nothing to undo.
    Poison { topic: String, count: u32 },
}

impl FaultAction {
    /// The link a network fault targets.
    pub fn link(&self) -> Option<&str> {
        match self {
            Self::Toxic { link, .. } | Self::LinkDown { link } => Some(link),
            _ => None,
        }
    }

    /// One line for logs and reports: "latency_downstream on
    /// payments->provider", "orders->payments down".
    pub fn describe(&self) -> String {
        match self {
            Self::Toxic { link, toxic } => format!("{} on {link}", toxic.resolved_name()),
            Self::LinkDown { link } => format!("{link} down"),
            Self::Crash { service } => format!("{service} crashed"),
            Self::PauseConsumer { group } => format!("consumer group {group} paused"),
            Self::Poison { topic, count } => format!("{count} poison message(s) on {topic}"),
            Self::Provider { faults } => format!(
                "provider fail {} decline {} lost-reply {} latency {}±{} ms",
                faults.failure_rate,
                faults.decline_rate,
                faults.lost_reply_rate,
                faults.latency_ms,
                faults.jitter_ms
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxic::{Latency, ToxicKind};
    use serde_json::json;

    /// The wire shape every crate reads: pinned, so a change to it is a
    /// change to every scenario file.
    #[test]
    fn steps_have_one_json_shape() {
        let steps = vec![
            FaultStep {
                at: Duration::from_secs(10),
                duration: Some(Duration::from_secs(20)),
                action: FaultAction::LinkDown {
                    link: "orders->payments".into(),
                },
            },
            FaultStep {
                at: Duration::from_secs(5),
                duration: None,
                action: FaultAction::Toxic {
                    link: "payments->provider".into(),
                    toxic: ToxicSpec::new(ToxicKind::Latency(Latency {
                        latency: 200,
                        jitter: 50,
                    })),
                },
            },
            FaultStep {
                at: Duration::from_secs(30),
                duration: Some(Duration::from_secs(5)),
                action: FaultAction::Crash {
                    service: Service::Notifications,
                },
            },
            FaultStep {
                at: Duration::from_secs(40),
                duration: Some(Duration::from_secs(10)),
                action: FaultAction::Provider {
                    faults: ProviderFaults {
                        lost_reply_rate: 0.5,
                        ..Default::default()
                    },
                },
            },
            FaultStep {
                at: Duration::from_secs(50),
                duration: Some(Duration::from_secs(3)),
                action: FaultAction::PauseConsumer {
                    group: Service::Payments,
                },
            },
            FaultStep {
                at: Duration::from_secs(60),
                duration: None,
                action: FaultAction::Poison {
                    topic: "orders".into(),
                    count: 3,
                },
            },
        ];
        let got = serde_json::to_value(&steps).unwrap();
        let want = json!([
          {"at": "10s", "duration": "20s", "action": {"type": "link_down", "link": "orders->payments"}},
          {"at": "5s", "action": {"type": "toxic", "link": "payments->provider",
                                  "toxic": {"type": "latency", "attributes": {"latency": 200, "jitter": 50},
                                            "stream": "downstream", "toxicity": 1.0}}},
          {"at": "30s", "duration": "5s", "action": {"type": "crash", "service": "notifications"}},
          {"at": "40s", "duration": "10s", "action": {"type": "provider", "faults": {
              "failure_rate": 0.0, "decline_rate": 0.0, "latency_ms": 0, "jitter_ms": 0, "lost_reply_rate": 0.5}}},
          {"at": "50s", "duration": "3s", "action": {"type": "pause_consumer", "group": "payments"}},
          {"at": "1m", "action": {"type": "poison", "topic": "orders", "count": 3}}
        ]);
        assert_eq!(got, want);
        let back: Vec<FaultStep> = serde_json::from_value(want).unwrap();
        assert_eq!(back, steps);
    }

    #[test]
    fn unknown_actions_and_services_do_not_deserialise() {
        for bad in [
            json!({"at": "1s", "action": {"type": "meteor"}}),
            json!({"at": "1s", "action": {"type": "crash", "service": "order"}}),
            json!({"at": "1s", "action": {"type": "link_down", "link": "a->b", "extra": 1}}),
            json!({"at": "soon", "action": {"type": "link_down", "link": "a->b"}}),
        ] {
            assert!(
                serde_json::from_value::<FaultStep>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn descriptions_name_the_fault_and_its_target() {
        let toxic = FaultAction::Toxic {
            link: "orders->catalog".into(),
            toxic: ToxicSpec::new(ToxicKind::Latency(Latency::default())).name("slow"),
        };
        assert_eq!(toxic.describe(), "slow on orders->catalog");
        assert_eq!(toxic.link(), Some("orders->catalog"));
        let crash = FaultAction::Crash {
            service: Service::Orders,
        };
        assert_eq!(crash.describe(), "orders crashed");
        assert_eq!(crash.link(), None);
        assert_eq!(
            FaultAction::PauseConsumer {
                group: Service::Analytics
            }
            .describe(),
            "consumer group analytics paused"
        );
    }
}
