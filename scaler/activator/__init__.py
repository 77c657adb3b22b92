"""The activator: scale from zero without losing a request.

An asyncio HTTP/1.1 reverse proxy that sits in front of workloads whose policies name it.
Requests are routed by their Host header to a policy's route; while the route has ready
endpoints they are forwarded to the one with the fewest requests in flight; at zero they
are held (bounded, each for at most the route's timeout) and released in arrival order as
soon as endpoints become ready, and the daemons are poked at once so scale-from-zero does
not wait for a metrics scrape.

Modules, in the order a request meets them::

    cli            arguments, signals, reload, drain; ``main(argv)``, ``scaler activator``
    server         Activator: wires routes, endpoint watches, listeners, pool, pokes
    proxy          ClientConnection (parsing, keep-alive, tunnels) and Exchange (one request)
    routing        RouteState: ready endpoints, least-in-flight choice, hold queue, counts
    endpoints      Endpoint, the EndpointSource protocol, StaticEndpoints
    endpointslices the cluster's endpoints: a Service's EndpointSlices listed and watched
                   (EndpointSliceSource), the daemons behind theirs (DaemonDiscovery)
    kubeapi        a lean asyncio LIST and WATCH, with ``scaler.kubeconfig``'s credentials
    upstream       UpstreamPool and UpstreamConnection (keep-alive, response parsing)
    http1          hop-by-hop headers, chunk framing, the activator's own responses
    poke           Poker: coalesced, fire-and-forget pokes to every daemon
    admin          the admin port: /v1/stats, /metrics, /healthz, /readyz
    observability  structlog set-up and the Prometheus collector
    policies       routes from policy files (every policy with an activator block)
    config         Route (frozen) and the routes file (static endpoints, for local runs)

It imports ``scaler.policy``, ``scaler.kubeconfig`` and ``scaler.endpointslices``, never
the kubernetes package: importing that client alone costs about 36 MiB, more than half of
the activator's memory budget.

Wire formats (JSON, UTF-8; the daemon side reads them)
----------------------------------------------------

Stats — ``GET http://ACTIVATOR:ADMIN_PORT/v1/stats``, read by each daemon every second::

    {"activator": "3f9c1a2b4d5e",       # random per process start: a new value means the
                                        # counters below restarted from zero
     "sampled_at": 1764160000.123,      # unix seconds when the figures were read
     "uptime": 812.5,                   # seconds since start (monotonic clock)
     "proxy_port": 8080,                # where it takes workload traffic (the daemon's
                                        # serve/proxy switch points public Services here)
     "routes": {
       "checkout": {                    # the policy's name
         "namespace": "shop",
         "mode": "whenNeeded",          # always | whenNeeded
         "in_flight": 3,                # requests now between arrival and the end of their
                                        # response, held ones included (exact)
         "pending": 0,                  # of those, held at zero ready endpoints
         "ready_endpoints": 2,
         "requests": 18342,             # arrivals since start (a counter)
         "in_flight_seconds": 9120.25   # ∫ in_flight dt since start (a counter): between
       }}}                              # two reads, Δin_flight_seconds / Δuptime is the
                                        # exact average concurrency over that interval

Summed over activator replicas, ``in_flight`` (or the average from ``in_flight_seconds``)
is the policy's concurrency as Knative's queue-proxies would report it.

Poke — ``POST {daemon-url}/v1/poke``, sent at once when a request arrives at a route with
no ready endpoint (``--daemon-url`` is the daemon's base URL, repeatable: every replica is
poked, so a leader change loses nothing)::

    {"activator": "3f9c1a2b4d5e", "policy": "checkout", "namespace": "shop",
     "pending": 1, "in_flight": 1, "sent_at": 1764160000.125}

Any 2xx answer to a poke is success (202 with no body is what a daemon should send).
Pokes time out after 0.5 s and are never retried for the same arrival: the daemon's next
stats read covers a lost poke. Per daemon and policy at most one poke is in flight, and at
most one per second while the route keeps holding requests.

Metrics (``/metrics`` on the admin port): ``scaler_activator_requests_total{policy,outcome}``
with outcome proxied (forwarded at once), held (held at zero, then forwarded), rejected
(503: the hold queue was full), timed_out (504: held past the route's timeout), failed (no
endpoint reachable, or it broke mid-response) or cancelled (the client left first) — each
request counts once, when it ends; ``scaler_activator_in_flight{policy}``,
``scaler_activator_pending_requests{policy}``, ``scaler_activator_ready_endpoints{policy}``,
``scaler_activator_cold_start_seconds{policy}`` (histogram of hold times of released
requests), ``scaler_activator_pokes_total{result}``,
``scaler_activator_upstream_errors_total{policy}``,
``scaler_activator_unrouted_requests_total``.
"""
