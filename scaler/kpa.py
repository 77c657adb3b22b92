"""Knative's KPA decider: ``scaler.decide.kpa``, under the name it has always had.

The decider lives in :mod:`scaler.decide.kpa`; this module hands its public names on so
``from scaler.kpa import decide`` keeps working.
"""

from scaler.decide.kpa import (
    DELAY_BUCKET_SECONDS,
    INVALID,
    DeciderSpec,
    DeciderState,
    Decision,
    decide,
    delay_bucket,
    go_int32,
    initial_state,
)

__all__ = ["DELAY_BUCKET_SECONDS", "INVALID", "DeciderSpec", "DeciderState", "Decision",
           "decide", "delay_bucket", "go_int32", "initial_state"]
