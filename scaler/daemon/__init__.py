"""The daemon: every policy, every tick — query, decide, act — for as long as it runs.

Enters: policies (and their files, for reload), a metric source, an actuator, a clock,
and optionally a leader election. Leaves: writes through the actuator, one log line per
policy per tick, /metrics, /healthz and /readyz. ``loop`` drives the ticks, ``faults``
decides how calmly it takes a failing target (say it once, warn once, back off),
``lease`` holds the leader election (a coordination.k8s.io Lease through
``scaler.kube``), ``observability`` the logs, metrics and health endpoints.

May import: structlog, prometheus_client, ``scaler.decide`` (the pipeline), the source
and actuator protocols, ``scaler.policy``, ``scaler.clock`` and ``scaler.kube``; never
numpy, scipy or Pillow (a sidecar pays for every import), never a concrete source or
actuator — ``scaler.app`` chooses those.
"""
