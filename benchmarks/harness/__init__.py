"""What the benchmark studies share: resumable results files (`results`), running cells
(`cells`), the conventional baselines (`baselines`), the memory probe (`memory_probe`) and
the report helpers (`report_utils`). Not part of the installed library."""
