"""Replay reports: what a replay would have cost and where it fell short.

Enters: a :class:`~scaler.replay.engine.ReplayResult`. Leaves: ``summary`` (the figures
of summary.json and the terminal tables), ``outputs`` (decisions.csv, summary.json,
chart.png and compare.png, written all or nothing; ``csvfast`` lays out the CSV with
array operations, ``chart`` draws the PNGs) and ``progress`` (a progress bar for a
terminal). May import: numpy, Pillow (inside the chart functions only), the replay engine
and ``scaler.policy``; never the daemon, a source or an actuator.
"""
