//! Secrets Manager multi-Region replication through the real `aws-sdk-secretsmanager` client
//! against a spawned `tresor serve` serving two regions: a replica made at creation, updated by
//! the primary, read-only, never stored in the clear, and promoted.
#![allow(clippy::expect_used)] // tests: a panic is a failed test

mod common;

use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::Region;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::types::{ReplicaRegionType, StatusType};
use common::{Server, assert_not_on_disk};

const A: &str = "us-east-1";
const B: &str = "eu-west-1";

async fn client(server: &Server, region: &str) -> Client {
    let config = server.admin_config().await;
    let config = aws_sdk_secretsmanager::config::Builder::from(&config)
        .region(Region::new(region.to_string()))
        .build();
    Client::from_conf(config)
}

async fn wait_in_sync(primary: &Client, name: &str) {
    for _ in 0..200 {
        let d = primary
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .expect("describe");
        if d.replication_status()
            .first()
            .is_some_and(|s| s.status() == Some(&StatusType::InSync))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} did not come in sync");
}

#[tokio::test]
async fn a_replica_follows_its_primary_and_refuses_writes() {
    let server = Server::start(&["--regions", "us-east-1,eu-west-1"]);
    let (a, b) = (client(&server, A).await, client(&server, B).await);
    let marker = format!("replicated-{}", std::process::id());
    let created = a
        .create_secret()
        .name("ci/agent-token")
        .secret_string(&marker)
        .add_replica_regions(ReplicaRegionType::builder().region(B).build())
        .send()
        .await
        .expect("create");
    let status = created.replication_status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].region(), Some(B));
    wait_in_sync(&a, "ci/agent-token").await;

    let replica = b
        .describe_secret()
        .secret_id("ci/agent-token")
        .send()
        .await
        .expect("describe replica");
    assert_eq!(replica.primary_region(), Some(A));
    assert_eq!(
        replica.arn(),
        created.arn().map(|arn| arn.replace(A, B)).as_deref()
    );
    let got = b
        .get_secret_value()
        .secret_id("ci/agent-token")
        .send()
        .await
        .expect("read replica");
    assert_eq!(got.secret_string(), Some(marker.as_str()));

    // An update of the primary reaches the replica.
    let v2 = a
        .put_secret_value()
        .secret_id("ci/agent-token")
        .secret_string("second")
        .send()
        .await
        .expect("put")
        .version_id()
        .expect("version")
        .to_string();
    wait_in_sync(&a, "ci/agent-token").await;
    let mut seen = None;
    for _ in 0..200 {
        let v = b
            .get_secret_value()
            .secret_id("ci/agent-token")
            .send()
            .await
            .expect("read replica");
        if v.version_id() == Some(v2.as_str()) {
            seen = v.secret_string().map(str::to_string);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen.as_deref(), Some("second"));

    // Read-only there.
    let err = b
        .update_secret()
        .secret_id("ci/agent-token")
        .description("x")
        .send()
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Some("InvalidParameterException"));
    assert_eq!(
        err.message(),
        Some(
            "Operation not permitted on a replica secret. Call must be made in primary secret's region."
        )
    );
    // Neither copy is stored in the clear.
    assert_not_on_disk(
        &server.data_dir,
        marker.as_bytes(),
        "a replicated secret value",
    );

    // Promoted: standalone and writable in its region.
    b.stop_replication_to_replica()
        .secret_id("ci/agent-token")
        .send()
        .await
        .expect("promote");
    b.put_secret_value()
        .secret_id("ci/agent-token")
        .secret_string("own")
        .send()
        .await
        .expect("write after promotion");
    let primary = a
        .describe_secret()
        .secret_id("ci/agent-token")
        .send()
        .await
        .expect("describe");
    assert!(primary.replication_status().is_empty());
}
