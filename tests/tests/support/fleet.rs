//! Gateway instances sharing one PostgreSQL scratch schema and one blob
//! store (a bucket on the test S3 server under `cargo xtask ci`, else a
//! shared `file://` directory) — what docs/scale-out.md asks of a fleet.
//! Included by the fleet test files with `#[path]`.

use batchgate_store_postgres::testing::Scratch;
use batchgate_tests::s3::Bucket;
use batchgate_tests::Gateway;

/// The ID secret every instance shares.
pub const SECRET: &str = "a-fleet-wide-test-secret";

/// `n` instances of one config on a fresh schema and blob store.
pub struct Fleet {
    pub gateways: Vec<Gateway>,
    _blobs: tempfile::TempDir,
    _scratch: Scratch,
}

impl Fleet {
    /// `bucket` names the S3 bucket and prefix, when there is a server.
    pub async fn start(cfg: &str, bucket: &str, n: usize) -> Fleet {
        let scratch = Scratch::new().await;
        let blobs = tempfile::tempdir().unwrap();
        let mut env = match Bucket::create(bucket).await.unwrap() {
            Some(b) => {
                let mut env = b.env();
                env.push(("BATCHGATE_STORAGE_URL", format!("s3://{}/{bucket}", b.name)));
                env
            }
            None => {
                let url = format!("file://{}", blobs.path().display());
                vec![("BATCHGATE_STORAGE_URL", url)]
            }
        };
        env.push(("DATABASE_URL", scratch.url()));
        env.push(("BATCHGATE_ID_SECRET", SECRET.into()));
        let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut gateways = Vec::new();
        for _ in 0..n {
            gateways.push(Gateway::start_with(cfg, &[], &envs).await.unwrap());
        }
        Fleet {
            gateways,
            _blobs: blobs,
            _scratch: scratch,
        }
    }
}
