"""Fixtures for the Lease tests (leader election, shutdown, bucket shards): the fake API
server, a client of it, and a manual clock. A test module imports the ones it uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes.client import Configuration
from support.fakekube import FakeKubeAPIServer

from scaler.clock import ManualClock
from scaler.kube import KubeClient


@pytest.fixture
def server() -> Iterator[FakeKubeAPIServer]:
    with FakeKubeAPIServer() as srv:
        yield srv


@pytest.fixture
def client(server: FakeKubeAPIServer) -> Iterator[KubeClient]:
    kube = KubeClient(Configuration(host=server.url))
    yield kube
    kube.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_700_000_000.0)
