//! Gossip membership (seed 003): SWIM through [`foca`], with no registry.
//!
//! foca is sans-I/O: it says "send these bytes to that member", "wake me after this long"
//! and "this member went up/down", and this thin driver does the rest with the node's
//! seams — the [`Clock`] for its timers (so skew and drift reach them), a generator
//! seeded from madsim's `rand` (deterministic per seed in simulation, OS-seeded in real
//! mode) and UDP through [`Datagrams`]. The same code runs in both modes.
//!
//! SWIM as foca does it: every probe period a member pings one other; a silent one is
//! probed indirectly through `num_indirect_probes` others, then marked suspect; a suspect
//! that does not refute (by raising its incarnation) within the suspicion time is declared
//! down. Updates ride piggy-back on every message. A member declared down while alive (it
//! was paused, or cut off) rejoins under a new *generation* of its identity, which wins
//! over the old one (see [`Peer`]); a restarted node starts with a fresh generation.
//!
//! Under the gossip, now and then a server pulls one member's whole view and merges it
//! ([`super::view_pull`]): the anti-entropy that catches the changes gossip missed.
//!
//! Every datagram carries an HMAC of its kind and payload under the cluster key
//! ([`crate::auth`]): one that does not prove the key, or that does not decode, is refused
//! and reported as [`NodeEvent::Refused`], never a panic.

use super::view_pull::{self, Kind};
use crate::auth::ClusterKey;
use crate::runtime::datagram::Datagrams;
use crate::runtime::{Clock, EventSink, MemberState, NodeEvent, Routes};
use foca::{Config, Foca, Identity, Member, Notification, PeriodicParams, PostcardCodec, State};
use rand::Rng;
use rand_foca::rngs::SmallRng;
use rand_foca::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Ring points per member with gossip membership (seed 003: 256).
pub const DEFAULT_VIRTUAL_NODES: u32 = 256;
/// SWIM's protocol period (one probe per member per period).
pub const DEFAULT_PROBE_PERIOD: Duration = Duration::from_secs(1);
/// What a datagram's MAC is for (see [`ClusterKey::mac`]).
const PURPOSE: &str = "simnode gossip datagram";
const MAC_BYTES: usize = 32;
/// Largest foca payload (a datagram is this plus its MAC).
pub const MAX_PACKET: usize = 1400;
/// How often the view is sampled for suspicion, in protocol periods (foca does not
/// announce suspicion; ups and downs are published at once).
const SAMPLES_PER_PERIOD: u32 = 4;

/// Gossip bytes every driver in this process has sent (for `sim bench`, like
/// [`crate::http::requests_served`]).
static BYTES_SENT: AtomicU64 = AtomicU64::new(0);

/// Gossip bytes (datagrams with their MACs) sent by every node of this process so far.
pub fn bytes_sent() -> u64 {
    BYTES_SENT.load(Ordering::Relaxed)
}

/// Gossip settings (`--membership gossip --join ...`, knob `membership = "gossip"`).
#[derive(Clone, Debug, PartialEq)]
pub struct GossipConfig {
    /// Members to announce to at start (and whenever this node knows no one).
    pub join: Vec<SocketAddr>,
    /// SWIM's protocol period.
    pub probe_period: Duration,
}

/// A member's identity on the wire: its id, its address (HTTP over TCP, gossip over UDP,
/// the same port) and the generation of this start of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Node id (`n1`, `node-1`).
    pub id: String,
    /// Its address.
    pub addr: SocketAddr,
    /// Starts at the node's wall clock in ms; +1 on every rejoin. 0: a join address
    /// whose member is not known yet.
    pub generation: u64,
}

impl Identity for Peer {
    type Addr = SocketAddr;

    /// A member declared down comes back as the next generation.
    fn renew(&self) -> Option<Self> {
        Some(Peer {
            generation: self.generation.saturating_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Two identities at one address: the later start wins.
    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

/// One row of `GET /members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Node id.
    pub id: String,
    /// Its address.
    pub address: String,
    /// Alive, suspect or down, in this node's view.
    pub state: MemberState,
    /// The incarnation that state is about.
    pub incarnation: u16,
    /// Which start of the member.
    pub generation: u64,
}

/// A membership view: id -> row, this node included.
pub type View = BTreeMap<String, MemberInfo>;

/// The members a view routes to (alive or suspect: SWIM keeps a suspect a member until
/// it is declared down), id -> address.
pub fn active(view: &View) -> BTreeMap<String, String> {
    view.values()
        .filter(|m| m.state != MemberState::Down)
        .map(|m| (m.id.clone(), m.address.clone()))
        .collect()
}

/// foca's settings for `cluster_size` members: its LAN profile scaled to the probe
/// period, announcing to down members often enough that a healed partition reunites.
fn foca_config(config: &GossipConfig, cluster_size: usize) -> Config {
    let size =
        NonZeroU32::new(cluster_size.clamp(1, u32::MAX as usize) as u32).unwrap_or(NonZeroU32::MIN);
    let period = config.probe_period;
    let mut foca = Config::new_lan(size);
    let scale = period.as_secs_f64(); // new_lan's period is one second
    foca.probe_period = period;
    foca.probe_rtt = period / 2;
    foca.suspect_to_down_after = foca.suspect_to_down_after.mul_f64(scale);
    foca.max_packet_size = NonZeroUsize::new(MAX_PACKET).unwrap_or(NonZeroUsize::MIN);
    foca.notify_down_members = true;
    let every = |periods: u32, members: usize| PeriodicParams {
        frequency: period * periods,
        num_members: NonZeroUsize::new(members).unwrap_or(NonZeroUsize::MIN),
    };
    foca.periodic_announce = Some(every(10, 1));
    foca.periodic_announce_to_down_members = Some(every(5, 2));
    foca.periodic_gossip = Some(PeriodicParams {
        frequency: period / 5,
        num_members: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
    });
    foca
}

/// Verifies a datagram's MAC; returns its kind and payload, or why it is refused.
pub fn open<'d>(key: &ClusterKey, datagram: &'d [u8]) -> Result<(Kind, &'d [u8]), &'static str> {
    if datagram.len() < MAC_BYTES + 1 {
        return Err("shorter than its MAC");
    }
    let (mac, signed) = datagram.split_at(MAC_BYTES);
    if signed.len() > MAX_PACKET + 1 {
        return Err("longer than a gossip packet");
    }
    if !key.verify_mac(PURPOSE, &[signed], mac) {
        return Err("bad cluster MAC");
    }
    let kind = Kind::of(signed[0]).ok_or("unknown datagram kind")?;
    Ok((kind, &signed[1..]))
}

/// A payload with its kind and its MAC in front.
pub fn seal(key: &ClusterKey, kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut signed = Vec::with_capacity(1 + payload.len());
    signed.push(kind as u8);
    signed.extend_from_slice(payload);
    let mut datagram = Vec::with_capacity(MAC_BYTES + signed.len());
    datagram.extend_from_slice(&key.mac(PURPOSE, &[&signed]));
    datagram.extend_from_slice(&signed);
    datagram
}

/// What foca asked for during one call.
struct Io {
    key: ClusterKey,
    sends: Vec<(SocketAddr, Vec<u8>)>,
    timers: Vec<(Duration, foca::Timer<Peer>)>,
    /// A member went up or down (or this node rejoined): publish the view now.
    changed: bool,
    /// This node's incarnation, from the headers it sends (foca keeps it private).
    incarnation: u16,
}

impl foca::Runtime<Peer> for Io {
    fn notify(&mut self, notification: Notification<'_, Peer>) {
        match notification {
            Notification::DataSent(header) => self.incarnation = header.src_incarnation,
            Notification::DataReceived(_) | Notification::ProbeFailed(..) => {}
            _ => self.changed = true,
        }
    }

    fn send_to(&mut self, to: Peer, data: &[u8]) {
        self.sends
            .push((to.addr, seal(&self.key, Kind::Swim, data)));
    }

    fn submit_after(&mut self, event: foca::Timer<Peer>, after: Duration) {
        self.timers.push((after, event));
    }
}

/// Asks the driver to leave the cluster; answered once the leave is sent.
pub type LeaveRequest = oneshot::Sender<()>;

/// What the driver needs from the node.
pub struct Driver {
    /// Settings.
    pub config: GossipConfig,
    /// This node's id.
    pub id: String,
    /// Address to bind (UDP) and to be reached at.
    pub listen: SocketAddr,
    /// The node's clock.
    pub clock: Clock,
    /// Where member changes and refusals go.
    pub events: EventSink,
    /// The cluster key every datagram proves.
    pub key: ClusterKey,
    /// Called with the new view whenever it changes.
    pub on_change: Box<dyn FnMut(&View) + Send>,
    /// Leave requests (graceful shutdown).
    pub leave: mpsc::Receiver<LeaveRequest>,
    /// Gossip bytes sent so far (datagrams with their MACs), for `GET /members`.
    pub bytes_sent: Arc<AtomicU64>,
    /// Where a datagram for a member's address is sent (the fault proxy's relay of the
    /// link in a `sim real` run; the address itself otherwise).
    pub routes: Routes,
}

type Swim = Foca<Peer, PostcardCodec, SmallRng, foca::NoCustomBroadcast>;

struct State_ {
    foca: Swim,
    io: Io,
    timers: BTreeMap<(Instant, u64), foca::Timer<Peer>>,
    next_timer: u64,
    last: View,
    sized_for: usize,
    /// When to pull a member's view next ([`view_pull`]).
    next_pull: Instant,
    /// Pulls since the view last grew.
    quiet_pulls: u32,
    /// Views this node may still send; each sample tick refills one.
    answers: view_pull::AnswerRation,
}

/// Runs SWIM until a leave request is answered (or the node stops).
pub async fn run(mut driver: Driver) -> io::Result<()> {
    let socket = Arc::new(Datagrams::bind(driver.listen).await?);
    let (inbox_tx, mut inbox) = mpsc::channel::<(Vec<u8>, SocketAddr)>(1024);
    let reader = tokio::spawn({
        let socket = socket.clone();
        async move {
            loop {
                let mut buf = vec![0u8; MAC_BYTES + MAX_PACKET + 2];
                match socket.recv_from(&mut buf).await {
                    Ok((n, from)) => {
                        buf.truncate(n);
                        if inbox_tx.send((buf, from)).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        }
    });
    let me = Peer {
        id: driver.id.clone(),
        addr: driver.listen,
        generation: driver.clock.wall_ms().max(1) as u64,
    };
    let seed: u64 = madsim::rand::thread_rng().gen();
    let join: Vec<SocketAddr> = driver
        .config
        .join
        .iter()
        .copied()
        .filter(|a| *a != driver.listen)
        .collect();
    let size = join.len() + 1;
    let mut s = State_ {
        foca: Foca::new(
            me,
            foca_config(&driver.config, size),
            SmallRng::seed_from_u64(seed),
            PostcardCodec,
        ),
        io: Io {
            key: driver.key.clone(),
            sends: Vec::new(),
            timers: Vec::new(),
            changed: true,
            incarnation: 0,
        },
        timers: BTreeMap::new(),
        next_timer: 0,
        last: View::new(),
        sized_for: size,
        next_pull: Instant::now()
            + driver.clock.true_duration(view_pull::next_pull(
                driver.config.probe_period,
                u32::MAX,
                jitter(),
            )),
        quiet_pulls: u32::MAX,
        answers: view_pull::AnswerRation::default(),
    };
    // The join addresses are known as down placeholders: foca keeps announcing to down
    // members, so a join target that is not up yet is found once it is.
    let placeholders: Vec<Member<Peer>> = join
        .iter()
        .map(|&addr| {
            Member::down(Peer {
                id: String::new(),
                addr,
                generation: 0,
            })
        })
        .collect();
    let _ = s
        .foca
        .apply_many(placeholders.into_iter(), false, &mut s.io);
    announce(&mut s, &join);
    flush(&mut s, &socket, &mut driver).await;
    let sample = driver.config.probe_period / SAMPLES_PER_PERIOD;
    let mut next_sample = Instant::now() + driver.clock.true_duration(sample);
    let mut periods_alone = 0u32;
    loop {
        let next_timer = s.timers.keys().next().map(|(t, _)| *t);
        let wake = tokio::select! {
            biased;
            Some(reply) = driver.leave.recv() => Wake::Leave(reply),
            _ = tokio::time::sleep_until(next_timer.unwrap_or(next_sample)), if next_timer.is_some() => Wake::Timers,
            Some((datagram, from)) = inbox.recv() => Wake::Datagram(datagram, from),
            _ = tokio::time::sleep_until(next_sample) => Wake::Sample,
        };
        match wake {
            Wake::Leave(reply) => {
                let _ = s.foca.leave_cluster(&mut s.io);
                flush(&mut s, &socket, &mut driver).await;
                reader.abort();
                let _ = reply.send(());
                return Ok(());
            }
            Wake::Timers => {
                let now = Instant::now();
                while let Some(entry) = s.timers.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let timer = entry.remove();
                    let _ = s.foca.handle_timer(timer, &mut s.io);
                }
            }
            Wake::Datagram(datagram, from) => match open(&driver.key, &datagram) {
                Ok((Kind::Swim, payload)) => {
                    if let Err(e) = s.foca.handle_data(payload, &mut s.io) {
                        refused(&driver.events, from, &format!("malformed: {e}"));
                    }
                }
                Ok((Kind::Ask, _)) => answer(&mut s, from),
                Ok((Kind::View, body)) => match view_pull::decode(body) {
                    Ok(members) => {
                        let me = s.foca.identity();
                        let news = view_pull::unknown(s.foca.iter_membership_state(), me, members);
                        let _ = s.foca.apply_many(news.into_iter(), true, &mut s.io);
                    }
                    Err(reason) => refused(&driver.events, from, reason),
                },
                Err(reason) => refused(&driver.events, from, reason),
            },
            Wake::Sample => {
                next_sample += driver.clock.true_duration(sample);
                s.io.changed = true;
                s.answers.refill();
                let now = Instant::now();
                if now >= s.next_pull {
                    pull(&mut s);
                    s.quiet_pulls = s.quiet_pulls.saturating_add(1);
                    s.next_pull = now
                        + driver.clock.true_duration(view_pull::next_pull(
                            driver.config.probe_period,
                            s.quiet_pulls,
                            jitter(),
                        ));
                }
                // Alone (every member down or never found): announce to the join list
                // once a period, as on start.
                if s.foca.num_members() == 0 {
                    periods_alone += 1;
                    if periods_alone >= SAMPLES_PER_PERIOD {
                        periods_alone = 0;
                        announce(&mut s, &join);
                    }
                }
            }
        }
        flush(&mut s, &socket, &mut driver).await;
    }
}

/// What woke the driver.
enum Wake {
    Leave(LeaveRequest),
    Timers,
    Datagram(Vec<u8>, SocketAddr),
    Sample,
}

fn announce(s: &mut State_, join: &[SocketAddr]) {
    for &addr in join {
        let target = Peer {
            id: String::new(),
            addr,
            generation: 0,
        };
        let _ = s.foca.announce(target, &mut s.io);
    }
}

/// A fraction in 0..1 from the runtime's generator (seeded in simulation).
fn jitter() -> f64 {
    madsim::rand::thread_rng().gen()
}

/// Asks one random active member for its view.
fn pull(s: &mut State_) {
    let members = s.foca.num_members();
    if members == 0 {
        return;
    }
    let pick = madsim::rand::thread_rng().gen_range(0..members);
    if let Some(member) = s.foca.iter_members().nth(pick) {
        let ask = seal(&s.io.key, Kind::Ask, &[]);
        s.io.sends.push((member.id().addr, ask));
    }
}

/// Sends this node's view to `to`, if the ration allows.
fn answer(s: &mut State_, to: SocketAddr) {
    if !s.answers.take() {
        return;
    }
    for body in view_pull::encode(s.foca.iter_membership_state()) {
        let part = seal(&s.io.key, Kind::View, &body);
        s.io.sends.push((to, part));
    }
}

fn refused(events: &EventSink, from: SocketAddr, reason: &str) {
    events.emit(NodeEvent::Refused {
        peer: from.to_string(),
        what: "gossip datagram".into(),
        reason: reason.into(),
    });
}

/// Sends what foca queued, schedules its timers, and publishes the view if it may have
/// changed.
async fn flush(s: &mut State_, socket: &Datagrams, driver: &mut Driver) {
    for (after, timer) in s.io.timers.drain(..) {
        let at = Instant::now() + driver.clock.true_duration(after);
        s.timers.insert((at, s.next_timer), timer);
        s.next_timer += 1;
    }
    for (to, datagram) in std::mem::take(&mut s.io.sends) {
        let bytes = datagram.len() as u64;
        driver.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        BYTES_SENT.fetch_add(bytes, Ordering::Relaxed);
        let _ = socket.send_to(driver.routes.dial(to), &datagram).await;
    }
    if std::mem::take(&mut s.io.changed) {
        publish(s, driver);
    }
}

/// This node's view now: the newest generation of every member foca knows (join
/// placeholders left out), and this node itself, alive.
fn view(s: &State_) -> View {
    let mut view = View::new();
    let me = s.foca.identity();
    let rows = s
        .foca
        .iter_membership_state()
        .map(|m| (m.id(), m.state(), m.incarnation()))
        .chain(std::iter::once((me, State::Alive, s.io.incarnation)));
    for (peer, state, incarnation) in rows {
        if peer.generation == 0
            || view
                .get(&peer.id)
                .is_some_and(|r| r.generation > peer.generation)
        {
            continue;
        }
        let state = match state {
            State::Alive => MemberState::Alive,
            State::Suspect => MemberState::Suspect,
            State::Down => MemberState::Down,
        };
        view.insert(
            peer.id.clone(),
            MemberInfo {
                id: peer.id.clone(),
                address: peer.addr.to_string(),
                state,
                incarnation,
                generation: peer.generation,
            },
        );
    }
    view
}

/// Whether the view may differ from the last one published, checked without building
/// it (the sample tick runs this on every server four times a period).
fn view_changed(s: &State_) -> bool {
    let me = s.foca.identity();
    let mine = s.last.get(&me.id);
    if mine.is_none_or(|r| (r.generation, r.incarnation) != (me.generation, s.io.incarnation)) {
        return true;
    }
    s.foca.iter_membership_state().any(|m| {
        let peer = m.id();
        if peer.generation == 0 {
            return false;
        }
        match s.last.get(&peer.id) {
            None => true,
            Some(row) if row.generation > peer.generation => false,
            Some(row) => {
                let state = match m.state() {
                    State::Alive => MemberState::Alive,
                    State::Suspect => MemberState::Suspect,
                    State::Down => MemberState::Down,
                };
                (row.generation, row.state, row.incarnation)
                    != (peer.generation, state, m.incarnation())
            }
        }
    })
}

fn publish(s: &mut State_, driver: &mut Driver) {
    if !view_changed(s) {
        return;
    }
    let view = view(s);
    if view == s.last {
        return;
    }
    for (id, row) in &view {
        let before = s.last.get(id);
        if before.is_none_or(|b| {
            (b.state, b.incarnation, b.generation) != (row.state, row.incarnation, row.generation)
        }) {
            driver.events.emit(NodeEvent::Member {
                member: id.clone(),
                state: row.state,
                incarnation: row.incarnation,
                generation: row.generation,
            });
        }
    }
    (driver.on_change)(&view);
    // A view that grew may be forming (or rejoining): pull another's soon.
    if view.len() > s.last.len() {
        let soon = Instant::now()
            + driver.clock.true_duration(view_pull::next_pull(
                driver.config.probe_period,
                0,
                jitter(),
            ));
        s.next_pull = s.next_pull.min(soon);
        s.quiet_pulls = 0;
    }
    // foca's timings (transmissions, suspicion) depend on the cluster's size: follow it
    // within a factor of two.
    let size = view.len();
    if (size > s.sized_for * 2 || size * 2 < s.sized_for)
        && s.foca.set_config(foca_config(&driver.config, size)).is_ok()
    {
        s.sized_for = size;
    }
    s.last = view;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(key: &ClusterKey) -> Io {
        Io {
            key: key.clone(),
            sends: Vec::new(),
            timers: Vec::new(),
            changed: false,
            incarnation: 0,
        }
    }

    fn swim(id: &str, port: u16) -> Swim {
        let config = GossipConfig {
            join: Vec::new(),
            probe_period: DEFAULT_PROBE_PERIOD,
        };
        let me = Peer {
            id: id.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            generation: 1,
        };
        Foca::new(
            me,
            foca_config(&config, 3),
            SmallRng::seed_from_u64(7),
            PostcardCodec,
        )
    }

    #[test]
    fn only_datagrams_that_prove_the_key_are_opened() {
        let key = ClusterKey::derived("gossip test");
        let sealed = seal(&key, Kind::Swim, b"payload");
        assert_eq!(open(&key, &sealed), Ok((Kind::Swim, &b"payload"[..])));
        let ask = seal(&key, Kind::Ask, b"");
        assert_eq!(open(&key, &ask), Ok((Kind::Ask, &b""[..])));
        let other = ClusterKey::derived("another cluster");
        assert_eq!(open(&other, &sealed), Err("bad cluster MAC"));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(open(&key, &flipped), Err("bad cluster MAC"));
        assert_eq!(open(&key, &sealed[..10]), Err("shorter than its MAC"));
        let huge = seal(&key, Kind::View, &vec![0u8; MAX_PACKET + 1]);
        assert_eq!(open(&key, &huge), Err("longer than a gossip packet"));
        let mut unknown = vec![9u8];
        unknown.extend_from_slice(b"payload");
        let mut forged = key.mac(PURPOSE, &[&unknown]).to_vec();
        forged.extend_from_slice(&unknown);
        assert_eq!(open(&key, &forged), Err("unknown datagram kind"));
    }

    /// Garbage that does prove the key (a buggy or hostile member) is an error from foca,
    /// never a panic, and changes nothing.
    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        let key = ClusterKey::derived("gossip test");
        let mut foca = swim("n1", 5001);
        let mut io = io(&key);
        let mut garbage = 0x2545_f491_4f6c_dd1du64;
        for len in 0..400usize {
            let bytes: Vec<u8> = crate::noise::bytes(&mut garbage, len);
            let _ = foca.handle_data(&bytes, &mut io);
        }
        assert_eq!(foca.num_members(), 0, "no member came out of noise");
    }

    /// Two instances wired by hand: an announce makes them members of each other, and
    /// the view of each lists both, alive.
    #[test]
    fn an_announce_makes_two_members() {
        let key = ClusterKey::derived("gossip test");
        let (mut a, mut b) = (swim("n1", 5001), swim("n2", 5002));
        let (mut io_a, mut io_b) = (io(&key), io(&key));
        let placeholder = Peer {
            id: String::new(),
            addr: SocketAddr::from(([127, 0, 0, 1], 5002)),
            generation: 0,
        };
        a.announce(placeholder, &mut io_a).expect("announce");
        for _ in 0..4 {
            for (_, datagram) in io_a.sends.drain(..).collect::<Vec<_>>() {
                let (_, payload) = open(&key, &datagram).expect("sealed");
                b.handle_data(payload, &mut io_b).expect("valid");
            }
            for (_, datagram) in io_b.sends.drain(..).collect::<Vec<_>>() {
                let (_, payload) = open(&key, &datagram).expect("sealed");
                a.handle_data(payload, &mut io_a).expect("valid");
            }
        }
        assert_eq!(a.num_members(), 1);
        assert_eq!(b.num_members(), 1);
        let ids: Vec<&str> = a.iter_members().map(|m| m.id().id.as_str()).collect();
        assert_eq!(ids, ["n2"]);
    }

    /// A member gossip never told about is learned from a pulled view: n3 knows n1, n2
    /// knows n1, and n2 takes n3 from n1's view (and leaves n1's own entry alone).
    #[test]
    fn a_pulled_view_teaches_the_members_gossip_missed() {
        let key = ClusterKey::derived("gossip test");
        let mut n1 = swim("n1", 5001);
        let mut n2 = swim("n2", 5002);
        let mut io1 = io(&key);
        let mut io2 = io(&key);
        let peer = |id: &str, port: u16| Peer {
            id: id.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            generation: 1,
        };
        n1.apply_many(
            [
                Member::alive(peer("n2", 5002)),
                Member::alive(peer("n3", 5003)),
            ]
            .into_iter(),
            false,
            &mut io1,
        )
        .expect("applied");
        n2.apply_many(
            [Member::alive(peer("n1", 5001))].into_iter(),
            false,
            &mut io2,
        )
        .expect("applied");
        let parts: Vec<Vec<u8>> = view_pull::encode(n1.iter_membership_state())
            .iter()
            .map(|body| seal(&key, Kind::View, body))
            .collect();
        for part in &parts {
            let (kind, body) = open(&key, part).expect("sealed");
            assert_eq!(kind, Kind::View);
            let members = view_pull::decode(body).expect("decodes");
            let news = view_pull::unknown(n2.iter_membership_state(), n2.identity(), members);
            assert_eq!(news, [Member::alive(peer("n3", 5003))], "only n3 is news");
            n2.apply_many(news.into_iter(), true, &mut io2)
                .expect("applied");
        }
        let mut ids: Vec<&str> = n2.iter_members().map(|m| m.id().id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["n1", "n3"]);
    }
}
