//! A node's connection to Redis (`broker.rs`): one server, or a Redis Cluster. Both speak RESP3
//! (commands and subscriptions share the connection) and reconnect by themselves; a room's
//! channel is an ordinary channel on one server and a sharded one (`SSUBSCRIBE`/`SPUBLISH`,
//! Redis 7) on a cluster, where it lives on the shard of the room's keys.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ConnectionInfo, IntoConnectionInfo as _, Pipeline, ProtocolVersion, RedisFuture};
use redis::{PushInfo, RedisResult, Value};
use tokio::sync::mpsc;

/// Where to connect: `--redis URL`, or `--redis URL,URL,...` (a cluster's seed nodes).
#[derive(Debug, Clone)]
pub(crate) enum Target {
    One(ConnectionInfo),
    Cluster(Vec<ConnectionInfo>),
}

impl Target {
    /// The target named by `urls` (comma-separated: a cluster's seed nodes); `Err` says what is
    /// wrong and what to write instead.
    pub(crate) fn parse(urls: &str) -> anyhow::Result<Self> {
        let mut infos = Vec::new();
        for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let info = url.into_connection_info().map_err(|e| {
                anyhow::anyhow!(
                    "{:?} is not a Redis URL ({e}); use redis://HOST:PORT[/DB], or for a Redis \
                     Cluster its seed nodes: redis://HOST:PORT,redis://HOST:PORT",
                    redacted(url)
                )
            })?;
            // RESP3: subscriptions and commands share the one connection.
            let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
            infos.push(info.set_redis_settings(settings));
        }
        match infos.len() {
            0 => anyhow::bail!("--redis is empty: use redis://HOST:PORT[/DB]"),
            1 => Ok(Self::One(infos.remove(0))),
            _ => Ok(Self::Cluster(infos)),
        }
    }

    /// Whether rooms use sharded channels (a cluster).
    pub(crate) fn sharded(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Connects; what subscriptions bring goes to `pushes`. Requests time out after
    /// `timeout`; the connection retries once and reconnects by itself.
    pub(crate) async fn connect(
        &self,
        pushes: mpsc::UnboundedSender<PushInfo>,
        timeout: Duration,
    ) -> RedisResult<Link> {
        match self {
            Self::One(info) => {
                let config = ConnectionManagerConfig::new()
                    .set_push_sender(pushes)
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    // The broker's supervisor is the long-term backoff.
                    .set_number_of_retries(1);
                let client = redis::Client::open(info.clone())?;
                Ok(Link::One(client.get_connection_manager_with_config(config).await?))
            }
            Self::Cluster(seeds) => {
                let client = ClusterClientBuilder::new(seeds.clone())
                    .use_protocol(ProtocolVersion::RESP3)
                    .push_sender(pushes)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(1)
                    .build()?;
                Ok(Link::Cluster(client.get_async_connection().await?))
            }
        }
    }
}

/// A live connection: cheap to clone (the clones share it).
#[derive(Clone)]
pub(crate) enum Link {
    One(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::One(_) => "Link::One",
            Self::Cluster(_) => "Link::Cluster",
        })
    }
}

impl Link {
    /// Subscribes to `channels` (sharded on a cluster: one SSUBSCRIBE per channel, since one
    /// command may only name channels of one slot).
    pub(crate) async fn subscribe(&mut self, channels: Vec<String>) -> RedisResult<()> {
        match self {
            Self::One(manager) => manager.subscribe(channels).await,
            Self::Cluster(cluster) => {
                for channel in channels {
                    cluster.ssubscribe(channel).await?;
                }
                Ok(())
            }
        }
    }

    /// Unsubscribes from `channel`.
    pub(crate) async fn unsubscribe(&mut self, channel: String) -> RedisResult<()> {
        match self {
            Self::One(manager) => manager.unsubscribe(channel).await,
            Self::Cluster(cluster) => cluster.sunsubscribe(channel).await,
        }
    }
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::One(manager) => manager.req_packed_command(cmd),
            Self::Cluster(cluster) => cluster.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::One(manager) => manager.req_packed_commands(pipeline, offset, count),
            Self::Cluster(cluster) => cluster.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::One(manager) => manager.get_db(),
            Self::Cluster(cluster) => cluster.get_db(),
        }
    }
}

/// `url` with its password (if any) replaced by `***`, for logs.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(redacted("redis://:s3cret@db:6379/2"), "redis://:***@db:6379/2");
        assert_eq!(redacted("redis://app:s3cret@db"), "redis://app:***@db");
        assert_eq!(redacted("redis://db:6379"), "redis://db:6379");
    }
}
