"""Load forecasts that may raise a replica floor: seasonal-level (the default),
Holt-Winters, linear trend, EWMA.

Enters: load samples (time, value) and the ticks to advise at, with the policy's
:class:`~scaler.policy.PredictionPolicy` (and, for seasonal-level, the decider's target
value). Leaves: :class:`Advice` per tick (a forecast at the horizon, its upper bound,
whether it may act) and the replica floor it implies. ``forecaster`` is the online form
the daemon feeds, ``series`` the batch form replay uses, ``advice`` the per-bucket core of
the fitted models and the choice of core, ``seasonal`` seasonal-level's core (its own
docstring has the model), ``models`` the fitted models, ``quality`` the report's error
figures.

May import: numpy, scipy, ``scaler.policy``. Pure: no I/O, no clock reads, no logging;
``now`` and every sample time are arguments. Only imported when prediction is on, so the
daemon without prediction never loads numpy; scipy is imported only when Holt-Winters or
EWMA first fit, so seasonal-level and linear never load it.

The rest of this docstring is the fitted models' (holt-winters, linear, ewma).

What it computes
================
Samples (unix seconds, load >= 0) go into buckets of ``grid`` (whole) seconds aligned to
multiples of ``grid`` (bucket k covers [k·grid, (k+1)·grid)), so seasons line up with the
wall clock. The load of a second is the sum of its samples, as the decider's windows sum a
1 s bucket; a bucket's value is the mean load over its seconds that have samples. A bucket
is final once a sample of a later bucket arrives; buckets skipped by a gap are final at the
same moment and count as *missing* (no data is not zero: a missing bucket updates no model
and no error statistic). Samples that are not finite or negative are
ignored, and a sample for a bucket that is already final is dropped. A gap longer than
``max_history`` starts the forecaster over (warming again).

The model is updated once per final bucket, in O(1) (linear: O(window)), and refitted on the
bucket history at most every ``refit_interval``:

* ``holt-winters``: additive Holt-Winters with one or more seasons (Taylor's double seasonal
  form for e.g. [1d, 7d]), error-correction form::

      e = y − (l + b + Σ s_i[k − m_i]);  l ← l + b + α e;  b ← b + β e;  s_i[k] = s_i[k − m_i] + γ_i e

  with β = α·β*, γ_i = (1 − α)·γ*_i and α, β*, γ*_i in [0, 1] fitted by
  ``scipy.optimize.minimize`` (Nelder-Mead over their logits, with a faint pull towards
  the cold-start values for parameters the history cannot identify) on the one-step
  squared error over the history (the last ``max_history``). The initial state comes from the first longest season of the
  history window: level = its mean, trend 0, each season = its phase means of what the
  shorter seasons left (centred). A refit runs the recursion season-block by season-block:
  inside a block of the shortest season every seasonal term is known from the previous
  blocks, so level and trend are a second-order linear filter (``scipy.signal.lfilter``)
  and the seasonal updates are one vector operation (scipy.signal is imported for lfilter
  alone: a Python loop over 20,160 buckets costs 100× more per pass). Missing buckets are filled for the
  fit (value one shortest season earlier, else the last value). The first fit waits for
  ``min_history`` longest seasons of history; refits start from the previous parameters
  with few iterations (cost: benchmarks/forecast_speed.py).
* ``linear``: least-squares line over the buckets of the last ``linear_window``,
  extrapolated (PHPA's linear model, on load instead of replicas).
* ``ewma``: s ← s + α (y − s), α fitted by ``scipy.optimize.minimize_scalar`` on the one-step
  squared error; the forecast is flat.

Advice at ``now``
=================
The advice uses the state after the last final bucket K − 1. While ``now`` lies in bucket K,
``now + horizon`` lies in one of the buckets K + floor(horizon/grid) .. K + ceil(horizon/grid);
the *point* forecast is the largest forecast over those buckets (h = j − (K − 1) steps ahead),
clamped at 0, so the advice only changes when a bucket becomes final.

The *upper* forecast is ``max(0, point + Q_q(r))`` where Q_q is the empirical ``quantile``
(linear interpolation, numpy's default) of the recent out-of-sample errors at the horizon:
r = y_k − f_{k | k − H}, the realised bucket mean minus the forecast made H = ceil(horizon/grid)
+ 1 buckets earlier (the farthest target above) for that bucket, over the buckets of the last
``error_window``. So with quantile 0.9 the upper forecast covers the actual about 90 % of the
time if the recent errors are representative; a biased model shifts it accordingly.

The advice is *active* (may raise the floor) only when all hold, checked in this order:
a model is fitted (holt-winters: at least ``min_history`` longest seasons seen; linear, ewma:
``linear_window`` seen); at least ``min_errors`` horizon errors are in the error window; the
error window's weighted MAPE, Σ|r| / Σ y, is at most ``max_error`` ("fallback" otherwise);
and the last final bucket ended less than ``stale_after`` (default 2 × grid) before ``now``.

The replica floor is ``ceil(upper / target_value)`` while active, else none (see
:func:`replica_floor`); prediction only ever raises the reactive count.

Replay
======
:func:`forecast_series` gives, for a whole recording and any ticks, exactly (bit for bit) what
feeding a :class:`Forecaster` every sample with time <= tick and calling ``advise(tick)``
gives: it aggregates with ``np.bincount`` (sequential sums, like the online ``+=``), runs the
same per-bucket code once per final bucket, and maps ticks to buckets with ``searchsorted``.
"""

from scaler.decide.predict.advice import Advice, replica_floor
from scaler.decide.predict.forecaster import Forecaster
from scaler.decide.predict.quality import quality, realised
from scaler.decide.predict.series import ForecastSeries, floor_series, forecast_series

__all__ = ["Advice", "ForecastSeries", "Forecaster", "floor_series", "forecast_series",
           "quality", "realised", "replica_floor"]
