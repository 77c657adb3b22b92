"""Recordings: a metric's history in a file — read, written, and served as a source.

Two formats: a CSV (``timestamp,value``) and Prometheus's own ``query_range`` JSON.
``parse`` reads either into arrays (:class:`Recording`), ``write`` saves what a source
answered (``scaler record``), ``source`` serves a recording as a
:class:`~scaler.sources.MetricSource`.

Enters: a file (or, to write one, a source's answer). Leaves: sample times and values,
checked (a :class:`RecordingError` names the line), or the file. May import: numpy and
the standard library, ``scaler.sources`` (``Reading``, ``wire``); never Prometheus's
client — ``write`` asks whatever source it is handed.
"""

from scaler.sources.recording.parse import Recording, RecordingError, load
from scaler.sources.recording.source import RecordingSource

__all__ = ["Recording", "RecordingError", "RecordingSource", "load"]
