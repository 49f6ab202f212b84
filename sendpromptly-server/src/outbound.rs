//! Outbound safety: which addresses repair callbacks (and alerts) may reach.
//!
//! - Link-local and cloud-metadata addresses (169.254.0.0/16, fe80::/10,
//!   100.100.100.200, fd00:ec2::254), unspecified, multicast and broadcast
//!   addresses are always refused.
//! - Loopback and private ranges (127/8, 10/8, 172.16/12, 192.168/16,
//!   100.64/10, ::1, fc00::/7) are refused unless the operator allows them
//!   with `--allow-private-urls` (self-hosters whose app runs beside the
//!   server usually do).
//!
//! Names are checked where they are resolved ([`GuardedResolver`]), so a
//! name that later resolves to a refused address (DNS rebinding) is still
//! refused; literal addresses are checked by [`check_url`]. Redirects are
//! never followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Why an outbound URL or address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// Not an absolute http(s) URL with a host.
    #[error("`{0}` is not an http:// or https:// URL with a host")]
    NotHttp(String),
    /// The URL carries a user name or password.
    #[error("URLs must not carry credentials; callbacks are authenticated by their signature")]
    Credentials,
    /// The address is never reachable from SendPromptly.
    #[error("{0} is a link-local, metadata or otherwise unroutable address and is always refused")]
    Forbidden(IpAddr),
    /// The address is private or loopback and the operator has not allowed those.
    #[error(
        "{0} is a private or loopback address; the operator must start the server with --allow-private-urls to reach it"
    )]
    Private(IpAddr),
    /// The name resolved, but only to refused addresses; `refused` says
    /// why the first one is refused (and so what to change).
    #[error("`{host}` resolves only to addresses SendPromptly may not call: {refused}")]
    NoAllowedAddress {
        /// The name.
        host: String,
        /// Why its first address is refused.
        refused: Box<OutboundError>,
    },
    /// Longer than [`MAX_URL_LENGTH`].
    #[error("must be at most 2048 characters")]
    TooLong,
}

/// The longest repair or alert URL accepted.
pub const MAX_URL_LENGTH: usize = 2048;

/// A repair or alert URL setting refused by [`OutboundPolicy::check_setting`]:
/// the setting's name and why, e.g. `repair_url: 127.0.0.1 is a private or
/// loopback address; …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {reason}")]
pub struct RefusedSetting {
    /// The setting, e.g. `repair_url` or `alert_channels[0].url`.
    pub param: String,
    /// Why.
    pub reason: OutboundError,
}

/// Whether private and loopback addresses may be called.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Allow loopback and private ranges.
    pub allow_private: bool,
}

impl OutboundPolicy {
    /// Checks one address.
    pub fn check_ip(self, ip: IpAddr) -> Result<(), OutboundError> {
        let ip = canonical(ip);
        if is_forbidden(ip) {
            return Err(OutboundError::Forbidden(ip));
        }
        if is_private(ip) && !self.allow_private {
            return Err(OutboundError::Private(ip));
        }
        Ok(())
    }

    /// The check of a repair or alert URL setting named `param`, the same
    /// wherever it happens: when it is saved (API, console, CLI) and when a
    /// callback or alert is about to be sent. Length, shape, and the address
    /// when the host is a literal address or `localhost` (names are checked
    /// where they are resolved, see [`GuardedResolver`]).
    pub fn check_setting(self, param: &str, value: &str) -> Result<url::Url, RefusedSetting> {
        let refused = |reason| RefusedSetting {
            param: param.to_owned(),
            reason,
        };
        if value.len() > MAX_URL_LENGTH {
            return Err(refused(OutboundError::TooLong));
        }
        self.check_url(value).map_err(refused)
    }

    /// Checks a URL's shape and, when its host is a literal address or
    /// `localhost`, the address itself.
    pub fn check_url(self, value: &str) -> Result<url::Url, OutboundError> {
        let url = url::Url::parse(value).map_err(|_| OutboundError::NotHttp(value.to_owned()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OutboundError::NotHttp(value.to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OutboundError::Credentials);
        }
        match url.host() {
            None => return Err(OutboundError::NotHttp(value.to_owned())),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    self.check_ip(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
                }
            }
        }
        Ok(url)
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_unspecified()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4 == Ipv4Addr::new(100, 100, 100, 200)
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback() || v4.is_private() || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// Names answered from a fixed table instead of the system resolver (the
/// outbound policy still checks each answer). Empty in production; tests
/// use it to make a name resolve to a private address.
pub type StaticHosts = Arc<[(String, IpAddr)]>;

/// Why looking a name up for an outbound call failed.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The name did not resolve (or the lookup failed).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// It resolved only to refused addresses.
    #[error(transparent)]
    Refused(#[from] OutboundError),
}

/// A DNS resolver for reqwest that drops refused addresses.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    policy: OutboundPolicy,
    hosts: StaticHosts,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`, answering the names of `hosts` itself.
    pub fn new(policy: OutboundPolicy, hosts: StaticHosts) -> Self {
        GuardedResolver { policy, hosts }
    }

    /// The addresses of `host` that `policy` allows, or why there are none.
    pub async fn lookup(&self, host: &str) -> Result<Vec<SocketAddr>, LookupError> {
        let found: Vec<SocketAddr> = match self.hosts.iter().find(|(name, _)| name == host) {
            Some((_, ip)) => vec![SocketAddr::new(*ip, 0)],
            None => tokio::net::lookup_host((host, 0)).await?.collect(),
        };
        let mut first_refusal = None;
        let allowed: Vec<SocketAddr> = found
            .into_iter()
            .filter(|addr| match self.policy.check_ip(addr.ip()) {
                Ok(()) => true,
                Err(refused) => {
                    first_refusal.get_or_insert(refused);
                    false
                }
            })
            .collect();
        match first_refusal {
            Some(refused) if allowed.is_empty() => Err(OutboundError::NoAllowedAddress {
                host: host.to_owned(),
                refused: Box::new(refused),
            }
            .into()),
            _ => Ok(allowed),
        }
    }

    /// The send-time verdict on a repair or alert URL setting, ahead of
    /// sending: [`OutboundPolicy::check_setting`], then, for a name, whether
    /// it currently resolves only to refused addresses. A name that does not
    /// resolve (or not within `timeout`) is not refused here.
    pub async fn check_setting_now(
        &self,
        param: &str,
        value: &str,
        timeout: std::time::Duration,
    ) -> Result<(), RefusedSetting> {
        let url = self.policy.check_setting(param, value)?;
        let Some(url::Host::Domain(name)) = url.host() else {
            return Ok(());
        };
        match tokio::time::timeout(timeout, self.lookup(name)).await {
            Ok(Err(LookupError::Refused(reason))) => Err(RefusedSetting {
                param: param.to_owned(),
                reason,
            }),
            _ => Ok(()),
        }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            match resolver.lookup(name.as_str()).await {
                Ok(allowed) => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
                Err(LookupError::Io(err)) => Err(Box::new(err) as _),
                // The refusal itself is the error, so that the attempt's
                // error text names the address and what to change.
                Err(LookupError::Refused(refused)) => Err(Box::new(refused) as _),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: OutboundPolicy = OutboundPolicy {
        allow_private: false,
    };
    const LAX: OutboundPolicy = OutboundPolicy {
        allow_private: true,
    };

    #[test]
    fn metadata_and_link_local_are_always_refused() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
            "http://0.0.0.0:8080/",
            "http://[::ffff:169.254.169.254]/",
            "http://100.100.100.200/",
            "http://[fd00:ec2::254]/",
        ] {
            assert!(
                matches!(LAX.check_url(url), Err(OutboundError::Forbidden(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn private_ranges_need_the_operator() {
        for url in [
            "http://127.0.0.1:9000/repair",
            "http://localhost/repair",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.10/",
            "http://100.64.0.1/",
            "http://[::1]/",
            "http://[fd12::1]/",
        ] {
            assert!(
                matches!(STRICT.check_url(url), Err(OutboundError::Private(_))),
                "{url}"
            );
            assert!(LAX.check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn public_and_malformed() {
        assert!(
            STRICT
                .check_url("https://app.example.com/sendpromptly/repair")
                .is_ok()
        );
        assert!(STRICT.check_url("https://93.184.216.34/").is_ok());
        assert!(matches!(
            STRICT.check_url("ftp://example.com/"),
            Err(OutboundError::NotHttp(_))
        ));
        assert!(matches!(
            STRICT.check_url("not a url"),
            Err(OutboundError::NotHttp(_))
        ));
        assert_eq!(
            STRICT.check_url("https://u:p@example.com/"),
            Err(OutboundError::Credentials)
        );
    }

    #[tokio::test]
    async fn a_name_resolving_only_to_refused_addresses_says_which_and_why() {
        let hosts: StaticHosts = vec![(
            "repair.internal".to_owned(),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)),
        )]
        .into();
        let strict = GuardedResolver::new(STRICT, hosts.clone());
        let err = strict
            .check_setting_now(
                "repair_url",
                "https://repair.internal/cb",
                std::time::Duration::from_secs(2),
            )
            .await
            .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "repair_url: `repair.internal` resolves only to addresses SendPromptly may not call: \
             10.0.0.7 is a private or loopback address; the operator must start the server with \
             --allow-private-urls to reach it"
        );
        let lax = GuardedResolver::new(LAX, hosts);
        assert!(lax.lookup("repair.internal").await.is_ok());
        assert!(
            lax.check_setting_now(
                "repair_url",
                "https://repair.internal/cb",
                std::time::Duration::from_secs(2)
            )
            .await
            .is_ok()
        );
    }
}
