"""Shared by the benchmark scripts: run the missing cells of an experiment, resumably."""

import os
import platform
import time
from datetime import date

import keras


def machine():
    """One line naming this machine and the Keras backend, stored with every record."""
    return f"{os.cpu_count()} CPU cores, {platform.machine()}, keras {keras.__version__} ({keras.backend.backend()})"


def run_cells(cells, results, describe, summary=lambda values: "done", time_field="seconds"):
    """Run each `(key, fn)` whose key `results` (a `ResultsFile`) lacks, in order: a fresh
    Keras session, the key's `seed` (where it has one) set, then `fn()`'s dict appended
    with its wall time (`time_field`), the machine and the date. Prints progress."""
    todo = [(key, fn) for key, fn in cells if not results.has(key)]
    print(f"{len(cells) - len(todo)} of {len(cells)} cells already done; {len(todo)} to run.", flush=True)
    for i, (key, fn) in enumerate(todo, 1):
        keras.backend.clear_session()
        if "seed" in key:
            keras.utils.set_random_seed(key["seed"])
        start = time.perf_counter()
        values = fn()
        values[time_field] = round(time.perf_counter() - start, 1)
        values["machine"] = machine()
        values["date"] = date.today().isoformat()
        results.append(key, values)
        print(f"[{i}/{len(todo)}] {describe(key)}: {summary(values)} ({values[time_field]} s)", flush=True)
