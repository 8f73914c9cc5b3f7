"""The relevance study's settings, shared by its runner (`relevance.py`) and its report
(`relevance_report.py`)."""

KEEP = (0.02, 0.05, 0.1, 0.2, 0.5)  # fractions of the input features kept, per ranking
RANKINGS = ("spectral", "permutation", "saliency", "variance", "random")
REMOVE = (0.5, 0.7, 0.8, 0.9, 0.95)  # fractions of the inputs removed in the L1 workflow
