"""The width study's settings, shared by its runner (`width_scaling.py`) and its report
(`width_scaling_report.py`)."""

CHEAP_MODES = ("frozen_kronecker", "svd")  # the configurations trained at large widths
