"""What an egress agent (one that needs the network, e.g. for an LLM API) may not reach, whatever the
backend: the host itself (every address of it, not only loopback) and private and link-local ranges
(other nodes' Ray ports, which run code; the cloud metadata service, which hands out credentials).
An LLM proxy on a private address is blocked too: run it on a public address or widen this list."""

BLOCKED_CIDRS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")
