//! Placement: which node a task goes to. Pure and deterministic: the same demand and the same nodes give the
//! same node, whoever computes it.
//!
//! What a demand costs on a node is its cost less the inputs that node already pulls and decodes for other
//! tasks ([`NodeView::cost_of`]): the two sides of a PK battle share their hosts' decoding, so the second side
//! adds about two thirds of its cost next to the first. The rules, in order:
//! 1. Only a node that is [`NodeState::Up`], is not the demand's `exclude`, and has room: its reserved cost plus
//!    the demand's cost there is at most its capacity. None: [`NoRoom`].
//! 2. A node that stays *level* wins over one that does not: level means its utilisation after placing,
//!    (reserved + cost) ÷ capacity, is at most the highest utilisation of any up node now, so the placement
//!    raises no node above the cluster's current peak.
//! 3. Among level nodes: the one sharing the most of the demand's inputs (affinity: a PK battle's other side),
//!    then the emptiest (lowest utilisation before placing), which fills the cluster's holes (nodes that lost
//!    tasks, nodes that just joined) up to the peak.
//! 4. When no node stays level: the lowest utilisation after placing, which raises the peak the least (big
//!    nodes take big tasks); then the most shared inputs.
//! 5. Ties: the smaller node id.
//!
//! So affinity wins when the node has room and the task keeps it level; otherwise balance wins. Always taking
//! the node with the shared inputs, or always the lowest utilisation after placing, both let the busiest node
//! run well ahead of the mean (docs/cluster.md has the simulation's figures for each).
//!
//! The cost is reserved at placement: the caller calls [`NodeView::reserve`] on the chosen node before placing
//! the next task, and [`NodeView::release`] with the same demand when the task ends or moves away. The node
//! counts the tasks using each input, so shared decoding is charged once while any of them runs, and in full to
//! the one left when the others end.
//!
//! One placement reads every node twice (O(nodes)) and allocates nothing. An input's key is hashed once, when
//! its [`InputKey`] is made, not once per node.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::OnceLock;

/// Whether a node takes tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Running and taking tasks.
    Up,
    /// Handing its tasks over: takes none.
    Draining,
    /// Gone (its lease expired): takes none.
    Down,
}

/// An input's key (its resolved source URL) with the URL's hash, computed once. Two keys are equal when their
/// URLs are. The hash is keyed at random per process, so no one can choose URLs that collide in a node's map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputKey {
    digest: u64,
    url: String,
}

impl InputKey {
    pub fn new(url: impl Into<String>) -> Self {
        static KEYS: OnceLock<RandomState> = OnceLock::new();
        let url = url.into();
        Self {
            digest: KEYS.get_or_init(RandomState::new).hash_one(&url),
            url,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Hash for InputKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.digest);
    }
}

/// The hasher of a node's inputs map: an [`InputKey`] is hashed already.
#[derive(Default)]
pub struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (InputKey's Hash); anything else is folded in, FNV-1a style.
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A node's inputs, by key.
pub type InputMap = HashMap<InputKey, InputUse, BuildHasherDefault<Prehashed>>;

/// An input a node pulls and decodes: for how many of its tasks, and the units it was reserved for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputUse {
    pub tasks: u32,
    pub cost: u64,
}

/// A node as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub id: String,
    /// Cost units it takes ([`super::cost::node_capacity`]).
    pub capacity: u64,
    /// Cost units reserved by the tasks placed on it.
    pub reserved: u64,
    pub state: NodeState,
    /// The inputs its tasks pull and decode.
    pub inputs: InputMap,
}

impl NodeView {
    pub fn new(id: impl Into<String>, capacity: u64) -> Self {
        Self {
            id: id.into(),
            capacity,
            reserved: 0,
            state: NodeState::Up,
            inputs: InputMap::default(),
        }
    }

    /// Reserved ÷ capacity (0 for a node without capacity).
    pub fn utilisation(&self) -> f64 {
        if self.capacity == 0 {
            0.0
        } else {
            self.reserved as f64 / self.capacity as f64
        }
    }

    /// What the demand adds here: its cost less its inputs this node already decodes.
    pub fn cost_of(&self, demand: &Demand) -> u64 {
        let shared: u64 = demand
            .inputs
            .iter()
            .filter(|i| self.inputs.contains_key(&i.key))
            .map(|i| i.cost)
            .sum();
        demand.cost.saturating_sub(shared)
    }

    /// Reserves a demand placed here; returns the units added ([`NodeView::cost_of`]).
    pub fn reserve(&mut self, demand: &Demand) -> u64 {
        let mut added = demand.own_cost();
        for input in &demand.inputs {
            let used = self.inputs.entry(input.key.clone()).or_insert(InputUse {
                tasks: 0,
                cost: input.cost,
            });
            if used.tasks == 0 {
                added += used.cost;
            }
            used.tasks += 1;
        }
        self.reserved += added;
        added
    }

    /// Releases a task that ends or moves away, given the demand it was reserved with; returns the units freed.
    pub fn release(&mut self, demand: &Demand) -> u64 {
        let mut freed = demand.own_cost();
        for input in &demand.inputs {
            if let Some(used) = self.inputs.get_mut(&input.key) {
                used.tasks -= 1;
                if used.tasks == 0 {
                    freed += used.cost;
                    self.inputs.remove(&input.key);
                }
            }
        }
        let freed = freed.min(self.reserved);
        self.reserved -= freed;
        freed
    }
}

/// One input of a demand: its key (the resolved source URL) and the part of the demand's cost that pulling and
/// decoding it takes ([`super::cost::mix_input_costs`]), which a node already decoding it does not add again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemandInput {
    pub key: InputKey,
    pub cost: u64,
}

/// A task to place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Demand {
    /// Cost units on a node that decodes none of its inputs ([`super::cost`]).
    pub cost: u64,
    /// Its inputs: a node already decoding one of them is preferred, and charged less.
    pub inputs: Vec<DemandInput>,
    /// The node it is moving away from, never chosen.
    pub exclude: Option<String>,
}

impl Demand {
    /// Its cost without its inputs.
    fn own_cost(&self) -> u64 {
        self.cost
            .saturating_sub(self.inputs.iter().map(|i| i.cost).sum())
    }
}

/// No node can take the demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no node has room for {cost} cost units ({up} up, the most free on one: {most_free})")]
pub struct NoRoom {
    pub cost: u64,
    /// Nodes up (the excluded one included).
    pub up: usize,
    /// The most free units on an up node that may be chosen.
    pub most_free: u64,
}

/// `a ÷ b` against `c ÷ d`, exactly.
fn cmp_ratio(a: u64, b: u64, c: u64, d: u64) -> Ordering {
    (u128::from(a) * u128::from(d)).cmp(&(u128::from(c) * u128::from(b)))
}

/// A node that can take the demand.
#[derive(Clone, Copy)]
struct Candidate {
    index: usize,
    level: bool,
    shared: usize,
    reserved: u64,
    after: u64,
    capacity: u64,
}

impl Candidate {
    /// Whether `self` goes before `other` by rules 2–5.
    fn beats(&self, other: &Candidate, nodes: &[NodeView]) -> bool {
        let before = || cmp_ratio(self.reserved, self.capacity, other.reserved, other.capacity);
        let after = || cmp_ratio(self.after, self.capacity, other.after, other.capacity);
        let order = other.level.cmp(&self.level).then_with(|| {
            if self.level {
                other.shared.cmp(&self.shared).then_with(before)
            } else {
                after().then_with(|| other.shared.cmp(&self.shared))
            }
        });
        match order {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => nodes[self.index].id < nodes[other.index].id,
        }
    }
}

/// The index in `nodes` of the node the demand goes to (module docs for the rules).
pub fn place(demand: &Demand, nodes: &[NodeView]) -> Result<usize, NoRoom> {
    // The peak: the highest utilisation of an up node, as reserved ÷ capacity.
    let (mut peak_reserved, mut peak_capacity) = (0, 1);
    for node in nodes {
        if node.state == NodeState::Up
            && node.capacity > 0
            && cmp_ratio(node.reserved, node.capacity, peak_reserved, peak_capacity)
                == Ordering::Greater
        {
            (peak_reserved, peak_capacity) = (node.reserved, node.capacity);
        }
    }

    let mut best: Option<Candidate> = None;
    let mut up = 0;
    let mut most_free = 0;
    for (index, node) in nodes.iter().enumerate() {
        if node.state != NodeState::Up {
            continue;
        }
        up += 1;
        if demand.exclude.as_deref() == Some(node.id.as_str()) || node.capacity == 0 {
            continue;
        }
        let free = node.capacity.saturating_sub(node.reserved);
        most_free = most_free.max(free);
        // What the demand costs here: less the inputs this node already decodes (NodeView::cost_of).
        let (mut shared, mut saved) = (0, 0);
        if !node.inputs.is_empty() {
            for input in &demand.inputs {
                if node.inputs.contains_key(&input.key) {
                    shared += 1;
                    saved += input.cost;
                }
            }
        }
        let cost = demand.cost.saturating_sub(saved);
        if cost > free {
            continue;
        }
        let after = node.reserved + cost;
        let candidate = Candidate {
            index,
            level: cmp_ratio(after, node.capacity, peak_reserved, peak_capacity)
                != Ordering::Greater,
            shared,
            reserved: node.reserved,
            after,
            capacity: node.capacity,
        };
        if best.is_none_or(|b| candidate.beats(&b, nodes)) {
            best = Some(candidate);
        }
    }
    best.map(|b| b.index).ok_or(NoRoom {
        cost: demand.cost,
        up,
        most_free,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, capacity: u64, reserved: u64) -> NodeView {
        NodeView {
            reserved,
            ..NodeView::new(id, capacity)
        }
    }

    fn demand(cost: u64) -> Demand {
        Demand {
            cost,
            ..Demand::default()
        }
    }

    /// A PK battle side: two 1280×720 hosts, each 142 units of the cost to pull and decode.
    fn pk(cost: u64) -> Demand {
        Demand {
            cost,
            inputs: ["rtmp://in/h1", "rtmp://in/h2"]
                .map(|key| DemandInput {
                    key: InputKey::new(key),
                    cost: 142,
                })
                .into(),
            exclude: None,
        }
    }

    /// A node that already decodes these inputs for another task.
    fn decoding(mut node: NodeView, keys: &[&str]) -> NodeView {
        for key in keys {
            node.inputs.insert(
                InputKey::new(*key),
                InputUse {
                    tasks: 1,
                    cost: 142,
                },
            );
        }
        node
    }

    #[test]
    fn cluster_no_room_when_nothing_fits() {
        let nodes = [node("a", 1000, 900), node("b", 2000, 1500)];
        let err = place(&demand(600), &nodes).unwrap_err();
        assert_eq!(
            err,
            NoRoom {
                cost: 600,
                up: 2,
                most_free: 500
            }
        );
        // Exactly full fits.
        assert_eq!(place(&demand(500), &nodes), Ok(1));
        assert_eq!(place(&demand(1), &[]).unwrap_err().up, 0);
        // A node without capacity takes nothing, not even a free task.
        assert!(place(&demand(0), &[node("z", 0, 0)]).is_err());
    }

    #[test]
    fn cluster_draining_and_down_nodes_are_never_chosen() {
        let mut nodes = [
            node("a", 10_000, 0),
            node("b", 10_000, 9_000),
            node("c", 10_000, 0),
        ];
        nodes[0].state = NodeState::Draining;
        nodes[2].state = NodeState::Down;
        assert_eq!(place(&demand(500), &nodes), Ok(1));
        let err = place(&demand(1500), &nodes).unwrap_err();
        assert_eq!((err.up, err.most_free), (1, 1000));
        // Not even for affinity.
        nodes[0] = decoding(nodes[0].clone(), &["rtmp://in/h1", "rtmp://in/h2"]);
        assert_eq!(place(&pk(900), &nodes), Ok(1));
    }

    #[test]
    fn cluster_level_nodes_first_then_lowest_utilisation_after() {
        // Nothing placed yet (peak 0): nothing stays level, so the lowest utilisation after placing wins, and
        // the bigger node takes the task (1000/8000 against 1000/2000).
        let nodes = [node("a", 8000, 0), node("b", 2000, 0)];
        assert_eq!(place(&demand(1000), &nodes), Ok(0));
        // Equal before, the bigger node rises less.
        let nodes = [node("small", 2000, 1000), node("big", 8000, 4000)];
        assert_eq!(place(&demand(500), &nodes), Ok(1));

        // c is the peak (50 %). For 400 units a (42.5 % after) and b (45 % after) stay level: b is the emptiest
        // (25 % before), so it takes the task though a would end lower.
        let nodes = [
            node("a", 8000, 3000),
            node("b", 2000, 500),
            node("c", 4000, 2000),
        ];
        assert_eq!(place(&demand(400), &nodes), Ok(1));
        // For 600 b would end above the peak (55 %); a stays level (45 %).
        assert_eq!(place(&demand(600), &nodes), Ok(0));
        // For 2500 none stays level: the lowest after (a, 69 %).
        assert_eq!(place(&demand(2500), &nodes), Ok(0));
    }

    #[test]
    fn cluster_ties_go_to_the_smaller_id_whatever_the_order() {
        // Level, equally empty: n1.
        let nodes = [
            node("n2", 4000, 1000),
            node("n1", 4000, 1000),
            node("n3", 4000, 1000),
            node("p", 4000, 3000),
        ];
        assert_eq!(place(&demand(100), &nodes), Ok(1));
        // Not level, equal after (equal ratios with different capacities, compared exactly): a, in any order.
        let nodes = [node("b", 2000, 900), node("a", 4000, 1800)];
        assert_eq!(place(&demand(100), &nodes), Ok(1));
        let mut rev = nodes.clone();
        rev.reverse();
        assert_eq!(place(&demand(100), &rev), Ok(0));
    }

    #[test]
    fn cluster_affinity_wins_when_it_fits_and_keeps_the_node_level() {
        let nodes = |peak: u64| {
            [
                node("a", 10_000, 0),
                decoding(node("b", 10_000, 6_000), &["rtmp://in/h1", "rtmp://in/h2"]),
                decoding(node("c", 10_000, 5_000), &["rtmp://in/h2"]),
                node("p", 10_000, peak),
            ]
        };
        // b decodes both hosts: the side costs 900 − 2 × 142 = 616 there, b stays level (66 % against the
        // peak's 80 %), and wins over the empty a and over c, which decodes one.
        let n = nodes(8_000);
        assert_eq!(n[1].cost_of(&pk(900)), 616);
        assert_eq!(place(&pk(900), &n), Ok(1));
        // Too big for b (4216 there): c, decoding one, fits (93.6 % after) but is above the peak: the empty a.
        assert_eq!(place(&pk(4_500), &n), Ok(0));
        // With the peak at 95 %, c stays level and its shared input wins.
        assert_eq!(place(&pk(4_500), &nodes(9_500)), Ok(2));
        // Fits nowhere sharing: the balance rules.
        assert_eq!(place(&pk(5_200), &nodes(9_500)), Ok(0));
        // Unrelated inputs: no affinity, the emptiest level node.
        let other = Demand {
            cost: 900,
            inputs: vec![DemandInput {
                key: InputKey::new("rtmp://in/zz"),
                cost: 142,
            }],
            exclude: None,
        };
        assert_eq!(place(&other, &n), Ok(0));
    }

    #[test]
    fn cluster_exclude_is_honoured() {
        let nodes = [
            decoding(node("a", 10_000, 0), &["rtmp://in/h1", "rtmp://in/h2"]),
            node("b", 10_000, 5_000),
        ];
        let mut d = pk(1000);
        d.exclude = Some("a".into());
        assert_eq!(place(&d, &nodes), Ok(1));
        d.cost = 6000;
        let err = place(&d, &nodes).unwrap_err();
        assert_eq!((err.up, err.most_free), (2, 5000));
    }

    #[test]
    fn cluster_shared_inputs_are_reserved_once_and_released_last() {
        let mut n = node("a", 10_000, 0);
        let (one, two) = (pk(900), pk(900));
        assert_eq!(n.reserve(&one), 900);
        assert_eq!(n.reserve(&two), 616);
        assert_eq!(n.reserved, 1516);
        assert_eq!(n.inputs[&InputKey::new("rtmp://in/h1")].tasks, 2);
        // The first side ends: the decoding stays with the second.
        assert_eq!(n.release(&one), 616);
        assert_eq!(n.reserved, 900);
        assert_eq!(n.release(&two), 900);
        assert_eq!((n.reserved, n.inputs.len()), (0, 0));
        // A task without inputs.
        assert_eq!(n.reserve(&demand(70)), 70);
        assert_eq!(n.release(&demand(70)), 70);
        assert_eq!(n.reserved, 0);
    }

    /// 500 nodes, 20,000 tasks arriving and leaving, nodes draining, dying and joining
    /// ([`crate::cluster::sim`]). The figures are printed for docs/cluster.md; timing is the bench's
    /// (`cargo bench --bench placement`).
    #[test]
    fn cluster_simulation_500_nodes_20000_tasks() {
        let report = crate::cluster::sim::run(&crate::cluster::sim::Config::issue_16());
        eprintln!("{report}");
        report.check().unwrap();
    }
}
