"""Resumable results files for experiments: JSON lines, one finished cell per line.

Each write replaces the whole file atomically (temporary file + `os.replace`), so an
interrupted run never leaves a torn file; a rerun skips the cells already recorded. Writes
hold an exclusive lock on `<path>.lock`, so several processes can share one file. Keys are
stored as JSON: tuples become lists and NumPy scalars plain numbers, and lookups compare
keys in that stored form. A torn final line (a file written by other means and cut short)
is reported and skipped, and dropped by the next append; a bad line elsewhere, a line
that is JSON but not a record (an object with a `key` dict) and a file that is not text are
errors naming the file (and line), for every method alike. `removal_curves` reads the
node-removal records into the curves `keras_spectral.plots.removal_curves` draws.
"""

import contextlib
import fcntl
import json
import math
import numbers
import os
import tempfile
import warnings


def _plain(value):
    """JSON's encoder hook: NumPy scalars and arrays as plain numbers and lists."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _dumps(obj, what):
    try:
        return json.dumps(obj, sort_keys=True, default=_plain, allow_nan=True)
    except (TypeError, ValueError) as error:
        raise TypeError(f"Received an invalid {what} for a results file ({error}). Received: {obj!r}") from error


def _json_kind(value):
    """What a parsed JSON value is, in words (`a JSON array`, ...)."""
    kinds = {list: "a JSON array", str: "a JSON string", bool: "a JSON boolean", int: "a JSON number",
             float: "a JSON number", type(None): "JSON null"}
    return kinds.get(type(value), "a JSON value")


def _stored(key):
    """A key as it reads back from the file (tuples as lists, NumPy scalars as numbers)."""
    if not isinstance(key, dict):
        raise TypeError(f"Received an invalid value for `key`, expected a dict. Received: key={key!r}")
    return json.loads(_dumps(key, "key"))


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
        try:
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().split("\n")
        except UnicodeDecodeError as error:
            raise ValueError(
                f"{self.path} is not a results file: it is not UTF-8 text ({error}). Expected "
                "JSON lines, one record per line."
            ) from None
        numbered = [(i, line) for i, line in enumerate(lines, 1) if line.strip()]
        records = []
        for position, (number, line) in enumerate(numbered):
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("key"), dict):
                    what = _json_kind(record) if not isinstance(record, dict) else "an object without a `key` dict"
                    raise ValueError(
                        f"{self.path}, line {number}: not a results record: expected a JSON object "
                        f'with a `key` dict ({{"key": {{...}}, ...}}), got {what}: {line[:80]!r}. '
                        "Fix or remove that line; the other records are intact."
                    )
                records.append(record)
            except json.JSONDecodeError as error:
                if position == len(numbered) - 1:
                    warnings.warn(
                        f"{self.path}, line {number}: torn final record skipped ({error}); "
                        "the cell will be run again and the line replaced on the next append.",
                        stacklevel=2,
                    )
                    break
                raise ValueError(
                    f"{self.path}, line {number}: not a JSON record ({error}). Fix or remove "
                    "that line; the other records are intact."
                ) from error
        return records

    @staticmethod
    def _same(record, key):
        return all(record.get("key", {}).get(k) == v for k, v in key.items()) and len(
            record.get("key", {})
        ) == len(key)

    def get(self, key):
        """The recorded cell with exactly this key, or None."""
        key = _stored(key)
        return next((r for r in self.records() if self._same(r, key)), None)

    def has(self, key):
        return self.get(key) is not None

    def missing(self, keys):
        """The keys, in order, that have no recorded cell (one read of the file)."""
        recorded = self.records()
        return [key for key in keys if not any(self._same(r, _stored(key)) for r in recorded)]

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
        new = _dumps({"key": _stored(key), **values}, "record")
        lines = [json.dumps(r, sort_keys=True) for r in self.records()]
        lines.append(new)
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


def _fraction(value, what, record):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not 0.0 <= number <= 1.0:
        raise ValueError(
            f"Record {record['key']} has an invalid {what} in its `accuracy` dict, expected a fraction "
            f"in [0, 1] (accuracies are stored as fractions, not percent). Received: {value!r}"
        )
    return number


def removal_curves(results, group_by="method", **where):
    """The curves of `keras_spectral.plots.removal_curves`, `{label: (fractions,
    accuracies)}`, read from a results file (or a list of its records) whose records
    have an `accuracy` dict mapping the fraction removed (a string, e.g. `"0.9"`) to a
    test accuracy in [0, 1].

    Records are filtered by `where` (key fields, e.g. `dataset="mnist"`; compared as
    stored, so a tuple matches a stored list) and grouped by the key field `group_by`,
    which every matching record must have; a curve holds, per fraction, the accuracies
    of its records (one per seed).
    """
    if isinstance(results, (str, os.PathLike)):
        path = os.fspath(results)
        if not os.path.exists(path):
            raise FileNotFoundError(f"Results file not found: {path!r}")
        records = ResultsFile(path).records()
        if not records:
            raise ValueError(f"Results file {path!r} holds no records.")
    elif isinstance(results, list) and all(isinstance(r, dict) and isinstance(r.get("key"), dict) for r in results):
        records = results
    else:
        raise TypeError(
            "Received an invalid value for `results`, expected a results-file path or a list of "
            f"records (dicts with a `key` dict). Received: results={type(results).__name__}"
        )
    wanted = _stored(where)
    records = [r for r in records if isinstance(r.get("accuracy"), dict)
               and all(field in r["key"] and r["key"][field] == value for field, value in wanted.items())]
    if not records:
        raise ValueError(f"No records with an accuracy curve match {where or 'the results'}.")
    fields = set.intersection(*(set(r["key"]) for r in records))
    if group_by not in fields:
        raise ValueError(
            f"Received an invalid value for `group_by`, expected a key field of every matching record: "
            f"{', '.join(sorted(fields)) or '(none)'}. Received: group_by={group_by!r}"
        )
    groups = {}
    for record in records:
        curve = groups.setdefault(str(record["key"][group_by]), {})
        for fraction, value in record["accuracy"].items():
            curve.setdefault(_fraction(fraction, f"fraction removed {fraction!r}", record), []).append(
                _fraction(value, f"accuracy for {fraction!r}", record))
    return {label: (sorted(curve), [curve[f] for f in sorted(curve)]) for label, curve in groups.items()}
