//! The cluster's status as the client sees it, and its rendering as a readable table.
//!
//! Every node answers `GET /v1/status` with what it knows (its role, term, positions;
//! the leader also its followers' lag). [`NodeStatus`] is that JSON, typed; unknown
//! fields are ignored and the optional ones default, so a newer server that reports
//! more does not break an older client. [`ClusterStatus`] gathers every endpoint's
//! answer, or why it gave none: an unreachable node is part of the picture, not an
//! error. [`ClusterStatus::table`] is what `replikv status` prints; it is a pure
//! function of the statuses, so its layout is unit-tested.

use serde::Deserialize;
use std::fmt::Write as _;

/// One follower's replication lag, as its leader reports it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct FollowerStatus {
    pub id: u64,
    /// The highest index known durable on the follower and matching the leader's log.
    pub matched_index: u64,
    /// The leader's last index minus `matched_index`.
    pub lag_entries: u64,
    /// Milliseconds since the leader last heard from it (`None`: not in this term).
    #[serde(default)]
    pub last_ack_ms_ago: Option<u64>,
}

/// One node's `GET /v1/status`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct NodeStatus {
    pub node_id: u64,
    /// `leader`, `follower`, `candidate` or `pre-candidate`.
    pub role: String,
    pub leader: Option<u64>,
    pub term: u64,
    #[serde(default)]
    pub last_index: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    /// The commit mode and what it guarantees (`majority: safe — ...`).
    #[serde(default)]
    pub commit_mode: String,
    /// Whether the commit mode can lose acknowledged writes on a failover.
    #[serde(default)]
    pub lossy: bool,
    #[serde(default)]
    pub voters: Vec<u64>,
    #[serde(default)]
    pub learners: Vec<u64>,
    /// Acknowledged writes a lossy failover discarded, since the process started.
    #[serde(default)]
    pub writes_discarded: u64,
    /// On the leader, its followers in id order; empty elsewhere.
    #[serde(default)]
    pub followers: Vec<FollowerStatus>,
}

impl NodeStatus {
    /// The commit mode's name (`majority`), without its explanation.
    #[must_use]
    pub fn commit_mode_name(&self) -> &str {
        self.commit_mode
            .split_once(':')
            .map_or(self.commit_mode.as_str(), |(name, _)| name)
    }
}

/// One endpoint's status, or why it has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointStatus {
    pub endpoint: String,
    pub status: Result<NodeStatus, String>,
}

/// Every endpoint's status, in the order the client was given the endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterStatus {
    pub nodes: Vec<EndpointStatus>,
}

impl ClusterStatus {
    /// The leader that the most reachable nodes name, if any does.
    #[must_use]
    pub fn leader(&self) -> Option<u64> {
        let mut named: Vec<(u64, usize)> = Vec::new();
        for status in self.reachable() {
            let Some(leader) = status.leader else {
                continue;
            };
            match named.iter_mut().find(|(id, _)| *id == leader) {
                Some((_, count)) => *count += 1,
                None => named.push((leader, 1)),
            }
        }
        named
            .into_iter()
            .max_by_key(|(id, count)| (*count, std::cmp::Reverse(*id)))
            .map(|(id, _)| id)
    }

    /// The statuses of the nodes that answered.
    pub fn reachable(&self) -> impl Iterator<Item = &NodeStatus> {
        self.nodes
            .iter()
            .filter_map(|node| node.status.as_ref().ok())
    }

    /// The status as a readable table: one line per node, then the leader's followers
    /// with their lag.
    #[must_use]
    pub fn table(&self) -> String {
        let mut rows = vec![
            [
                "ENDPOINT",
                "NODE",
                "ROLE",
                "TERM",
                "LAST",
                "COMMIT",
                "APPLIED",
                "LEADER",
                "MODE",
                "LOSSY",
                "DISCARDED",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for node in &self.nodes {
            rows.push(node_row(node));
        }
        let mut text = render(&rows);
        let leader = self
            .reachable()
            .find(|status| status.role == "leader" && Some(status.node_id) == self.leader());
        match leader {
            None => text.push_str("\nno leader known\n"),
            Some(leader) => {
                let _ = writeln!(
                    text,
                    "\nleader n{} in term {}; followers:",
                    leader.node_id, leader.term
                );
                text.push_str(&followers_table(&leader.followers));
            }
        }
        text
    }
}

fn node_row(node: &EndpointStatus) -> Vec<String> {
    match &node.status {
        Err(error) => vec![
            node.endpoint.clone(),
            "-".into(),
            format!("unreachable: {error}"),
        ],
        Ok(status) => vec![
            node.endpoint.clone(),
            format!("n{}", status.node_id),
            status.role.clone(),
            status.term.to_string(),
            status.last_index.to_string(),
            status.commit_index.to_string(),
            status.applied_index.to_string(),
            status
                .leader
                .map_or_else(|| "-".into(), |leader| format!("n{leader}")),
            status.commit_mode_name().to_owned(),
            if status.lossy { "yes" } else { "no" }.into(),
            status.writes_discarded.to_string(),
        ],
    }
}

fn followers_table(followers: &[FollowerStatus]) -> String {
    if followers.is_empty() {
        return "  (none)\n".into();
    }
    let mut rows = vec![
        ["NODE", "MATCHED", "LAG_ENTRIES", "LAST_ACK_MS_AGO"]
            .map(String::from)
            .to_vec(),
    ];
    for follower in followers {
        rows.push(vec![
            format!("n{}", follower.id),
            follower.matched_index.to_string(),
            follower.lag_entries.to_string(),
            follower
                .last_ack_ms_ago
                .map_or_else(|| "never".into(), |ms| ms.to_string()),
        ]);
    }
    render(&rows)
        .lines()
        .map(|line| format!("  {line}\n"))
        .collect()
}

/// Left-aligned columns two spaces apart; a short row leaves its last cell unpadded
/// (an unreachable node's message runs past the columns).
fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter(|row| row.len() > column + 1 || row.len() == columns)
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            if column + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[column]);
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u64, role: &str, leader: Option<u64>) -> NodeStatus {
        NodeStatus {
            node_id: id,
            role: role.into(),
            leader,
            term: 4,
            last_index: 120,
            commit_index: 120,
            applied_index: 119,
            commit_mode: "majority: safe — acknowledged after 2 of 3".into(),
            lossy: false,
            voters: vec![1, 2, 3],
            ..NodeStatus::default()
        }
    }

    #[test]
    fn the_status_json_parses_with_unknown_and_missing_fields() {
        let json = r#"{"node_id": 2, "role": "leader", "leader": 2, "term": 7,
            "commit_index": 10, "applied_index": 9, "lossy": true,
            "followers": [{"id": 1, "matched_index": 8, "lag_entries": 2,
                           "last_ack_ms_ago": null}],
            "something_new": {"a": 1}}"#;
        let status: NodeStatus = serde_json::from_str(json).unwrap();
        assert_eq!(status.node_id, 2);
        assert_eq!(status.leader, Some(2));
        assert!(status.lossy);
        assert_eq!(status.followers[0].lag_entries, 2);
        assert_eq!(status.followers[0].last_ack_ms_ago, None);
        assert!(serde_json::from_str::<NodeStatus>(r#"{"node_id": 1}"#).is_err());
    }

    #[test]
    fn the_table_shows_every_node_and_the_leaders_followers() {
        let mut leader = node(1, "leader", Some(1));
        leader.followers = vec![
            FollowerStatus {
                id: 2,
                matched_index: 120,
                lag_entries: 0,
                last_ack_ms_ago: Some(12),
            },
            FollowerStatus {
                id: 3,
                matched_index: 100,
                lag_entries: 20,
                last_ack_ms_ago: None,
            },
        ];
        let status = ClusterStatus {
            nodes: vec![
                EndpointStatus {
                    endpoint: "127.0.0.1:8001".into(),
                    status: Ok(leader),
                },
                EndpointStatus {
                    endpoint: "127.0.0.1:8002".into(),
                    status: Ok(node(2, "follower", Some(1))),
                },
                EndpointStatus {
                    endpoint: "127.0.0.1:8003".into(),
                    status: Err("connection refused".into()),
                },
            ],
        };
        assert_eq!(status.leader(), Some(1));
        let expected = "\
ENDPOINT        NODE  ROLE      TERM  LAST  COMMIT  APPLIED  LEADER  MODE      LOSSY  DISCARDED
127.0.0.1:8001  n1    leader    4     120   120     119      n1      majority  no     0
127.0.0.1:8002  n2    follower  4     120   120     119      n1      majority  no     0
127.0.0.1:8003  -     unreachable: connection refused

leader n1 in term 4; followers:
  NODE  MATCHED  LAG_ENTRIES  LAST_ACK_MS_AGO
  n2    120      0            12
  n3    100      20           never
";
        assert_eq!(status.table(), expected);
    }

    #[test]
    fn without_an_agreed_leader_the_table_says_so() {
        let status = ClusterStatus {
            nodes: vec![
                EndpointStatus {
                    endpoint: "a".into(),
                    status: Ok(node(1, "candidate", None)),
                },
                EndpointStatus {
                    endpoint: "b".into(),
                    status: Ok(node(2, "follower", None)),
                },
            ],
        };
        assert_eq!(status.leader(), None);
        assert!(status.table().ends_with("\nno leader known\n"));
        assert_eq!(ClusterStatus::default().leader(), None);
    }

    #[test]
    fn the_leader_is_the_one_most_nodes_name() {
        let status = |leaders: &[Option<u64>]| ClusterStatus {
            nodes: leaders
                .iter()
                .enumerate()
                .map(|(index, leader)| EndpointStatus {
                    endpoint: index.to_string(),
                    status: Ok(node(index as u64 + 1, "follower", *leader)),
                })
                .collect(),
        };
        assert_eq!(status(&[Some(2), Some(3), Some(3)]).leader(), Some(3));
        assert_eq!(status(&[None, Some(2), None]).leader(), Some(2));
        assert_eq!(status(&[Some(3), Some(2)]).leader(), Some(2));
    }
}
