"""Replay reports: the summary figures, the terminal table and the chart."""
