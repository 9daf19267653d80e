//! `disk` faults on a real node: its durable log file is edited while the node is down,
//! with the same damage the simulator does to its disk image ([`simcore::damage`]).

use rand::SeedableRng;
use simcore::scenario::DiskMode;
use std::path::Path;

/// Tears or corrupts the log at `path` with draws seeded by `draw`; says what it did.
pub fn damage(path: &Path, mode: DiskMode, draw: u64) -> Result<String, String> {
    let mut bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(draw);
    let done = match mode {
        DiskMode::Tear => simcore::damage::tear(&mut bytes, &mut rng),
        DiskMode::Corrupt => simcore::damage::corrupt(&mut bytes, &mut rng),
    };
    std::fs::write(path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(done)
}
