"""Resumable results files for experiments: JSON lines, one finished cell per line.

Each write replaces the whole file atomically (temporary file + `os.replace`), so an
interrupted run never leaves a torn file; a rerun skips the cells already recorded. Writes
hold an exclusive lock on `<path>.lock`, so several processes can share one file.
"""

import contextlib
import fcntl
import json
import os
import tempfile


class ResultsFile:
    """Append-only record of finished experiment cells, keyed by a dict of identifiers.

    Example:

    >>> results = ResultsFile("results/sparsity.jsonl")  # doctest: +SKIP
    >>> key = {"dataset": "mnist", "seed": 0}  # doctest: +SKIP
    >>> if not results.has(key):  # doctest: +SKIP
    ...     results.append(key, {"accuracy": 0.97})
    """

    def __init__(self, path):
        self.path = path

    def records(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    @staticmethod
    def _same(record, key):
        return all(record.get("key", {}).get(k) == v for k, v in key.items()) and len(
            record.get("key", {})
        ) == len(key)

    def get(self, key):
        """The recorded cell with exactly this key, or None."""
        return next((r for r in self.records() if self._same(r, key)), None)

    def has(self, key):
        return self.get(key) is not None

    def missing(self, keys):
        """The keys, in order, that have no recorded cell (one read of the file)."""
        recorded = self.records()
        return [key for key in keys if not any(self._same(r, key) for r in recorded)]

    @contextlib.contextmanager
    def _locked(self):
        with open(self.path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, key, values):
        """Record a finished cell (atomically: the file is rewritten and renamed)."""
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        with self._locked():
            self._rewrite(key, values, folder)

    def _rewrite(self, key, values, folder):
        lines = [json.dumps(r, sort_keys=True) for r in self.records()]
        lines.append(json.dumps({"key": key, **values}, sort_keys=True))
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".partial")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
