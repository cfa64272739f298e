//! The WebSocket relay written as a user's protocol gives the same verdicts as the built-in
//! relay (state broadcast over the relay topology) on the grid stories of `scenarios/`, with the
//! same trace hashes.

use converge::crdt::LwwGrid;
use converge::netsim::CrdtSpec;
use converge::verify::Verify;
use converge_example_sync_protocols::relay::WebSocketRelay;

const STORIES: [&str; 4] = [
    "01-grid-random-tiebreak.toml",
    "02-grid-peer-id.toml",
    "03-late-joiner-no-snapshot.toml",
    "04-late-joiner-snapshot.toml",
];

fn story(file: &str) -> Verify<LwwGrid> {
    let path = format!("{}/../../scenarios/{file}", env!("CARGO_MANIFEST_DIR"));
    let scenario =
        converge::scenario_file::load(std::path::Path::new(&path)).expect("the story loads");
    let CrdtSpec::LwwGrid(config) = scenario.crdt else {
        panic!("{file} is a grid story");
    };
    Verify::new(scenario, move |_| LwwGrid::new(config)).seeds(0..30)
}

#[test]
fn the_user_relay_gives_the_built_in_relays_verdicts() {
    for file in STORIES {
        let builtin = story(file).without_shrinking();
        let user = story(file).without_shrinking().protocol(WebSocketRelay);
        for seed in 0..30 {
            let ours = builtin.judge_seed(seed).expect("valid");
            let theirs = user.judge_seed(seed).expect("valid");
            assert_eq!(ours.verdict, theirs.verdict, "{file} seed {seed}");
            // Written from scratch on the public seam, it even makes the same decisions.
            assert_eq!(ours.trace_hash, theirs.trace_hash, "{file} seed {seed}");
        }
    }
}
