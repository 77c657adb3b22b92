"""scaler: Knative's request-driven autoscaling (KPA) for any Kubernetes workload.

The folders are the data flow, from what the operator writes to what the cluster does:

    policy/    policies/*.yaml → validated, frozen Policy values
    sources/   Prometheus (live) | a recording (replay) → load samples
    decide/    windows → predict (optional floor) → kpa → zero → replicas to set   [pure]
    actuators/ kubernetes (live) | simulated (replay) | dry_run → the target's scale
    daemon/    the live loop: ticks on an injected clock, lease, logs, /metrics
    replay/    a recording through decide/ against a simulated workload; the report

Enters: policy files, and the workload's load from Prometheus or a recording. Leaves:
replica counts on the workload's scale subresource (or, in replay, a report of what they
would have been). Each package's docstring says what enters it, what leaves it and what
it may import; ``.importlinter`` holds the last.

``app`` wires a mode together (which source, which actuator, which clock); ``cli`` parses
the command line and calls ``app``; ``clock`` is the only place time is read; ``kube`` is
the Kubernetes client the actuator and the lease share; ``kpa`` re-exports the decider
under its historical name.
"""

__version__ = "0.1.0"
