//! The dirty set under a replay-like load: 1,000,000 changed keys of which 80% repeat a
//! key already seen (hot rows), de-duplicated and then taken out sorted for a flush.
//!
//! Run: `cargo bench --bench dirty_set -- --quick`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use godwit::engine::{Key, KeyPart};
use godwit::migration::dirty::DirtySet;
use std::hint::black_box;
use std::time::Duration;

const KEYS: usize = 1_000_000;
/// 20% of the keys are distinct, the other 80% repeat one of them.
const DISTINCT: usize = KEYS / 5;

/// xorshift64*: deterministic and dependency-free, so runs compare.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Keys in the order a change stream might deliver them: each distinct key once, the
/// repeats spread over the whole stream.
fn stream_keys() -> Vec<Key> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let ids: Vec<i64> = (0..DISTINCT)
        .map(|_| (rng.next() % 50_000_000) as i64)
        .collect();
    let mut keys: Vec<Key> = Vec::with_capacity(KEYS);
    let mut next_new = 0;
    for i in 0..KEYS {
        // Keep the share of new keys at 20% throughout the stream.
        let id = if next_new < DISTINCT && (i % 5 == 0 || KEYS - i <= DISTINCT - next_new) {
            next_new += 1;
            ids[next_new - 1]
        } else {
            ids[(rng.next() % next_new.max(1) as u64) as usize]
        };
        keys.push(vec![KeyPart::Int(id)]);
    }
    keys
}

fn bench(c: &mut Criterion) {
    let keys = stream_keys();
    let mut probe = DirtySet::default();
    probe.extend(keys.clone());
    let distinct = probe.len();

    let mut g = c.benchmark_group("dirty_set");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(KEYS as u64));
    g.bench_function(
        format!("extend 1M keys ({distinct} distinct) + take"),
        |b| {
            b.iter_batched(
                || keys.clone(),
                |k| {
                    let mut d = DirtySet::default();
                    d.extend(k);
                    black_box(d.take())
                },
                BatchSize::LargeInput,
            )
        },
    );
    // The stream hands keys over in polls, not in one vector.
    g.bench_function("extend 1M keys in batches of 1000 + take", |b| {
        b.iter_batched(
            || keys.chunks(1000).map(<[Key]>::to_vec).collect::<Vec<_>>(),
            |batches| {
                let mut d = DirtySet::default();
                for k in batches {
                    d.extend(k);
                }
                black_box(d.take())
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
