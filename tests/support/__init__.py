"""Real parts and hand-written fakes the tests start: Prometheus, an exporter, a Kubernetes API."""
