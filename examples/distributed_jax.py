"""Data-parallel training over several processes (or machines) on Keras' JAX engine.

On one machine, to try it (starts N worker processes on localhost):

    python examples/distributed_jax.py [--quick] [--processes 2]

On each of N machines (the coordinator is process 0's address, any free port):

    python examples/distributed_jax.py --coordinator 10.0.0.1:1234 --num-processes N --process-id I

Every worker calls `keras.distribution.initialize(...)` (JAX's CPU collectives go over
gloo; GPUs use NCCL), trains a SpectralDense network with
`keras.distribution.DataParallel` over all processes' devices and the `EigenvaluePruning`
callback, feeding only its own rows of each global batch. Process 0 alone writes the
`.keras` checkpoint (saving a distributed model is a collective step, so it saves an
undistributed copy with the same weights and optimizer state).
"""

import os
import socket
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
from _common import mnist, parser  # noqa: E402

GLOBAL_BATCH = 200


def worker(args):
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    import keras
    import numpy as np
    from jax.experimental import multihost_utils

    from keras_spectral import EigenvaluePruning, PolynomialDecay, SpectralDense, node_sparsity

    count, index = args.num_processes, args.process_id
    keras.distribution.initialize(job_addresses=args.coordinator, num_processes=count, process_id=index)
    distribution = keras.distribution.DataParallel(devices=keras.distribution.list_devices())
    distribution.auto_shard_dataset = False  # each process feeds its own rows
    keras.distribution.set_distribution(distribution)

    (x, y), (xt, yt) = mnist(args)
    usable = len(x) - len(x) % GLOBAL_BATCH
    local = GLOBAL_BATCH // count

    def my_rows(a):  # rows [index*local, (index+1)*local) of every global batch
        return a[:usable].reshape(-1, count, local, *a.shape[1:])[:, index].reshape(-1, *a.shape[1:])

    width, epochs = (64, 2) if args.quick else (500, 5)

    def build():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((784,)),
                                  SpectralDense(width, activation="relu", eigenvectors="qr"),
                                  SpectralDense(10, activation="softmax", eigenvectors="qr")])
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    model = build()
    steps = epochs * (usable // GLOBAL_BATCH)
    pruning = EigenvaluePruning(PolynomialDecay(0.0, 0.5, begin_step=0, end_step=steps // 2, frequency=max(1, steps // 10)),
                                score="sum")
    model.fit(my_rows(x), my_rows(y), batch_size=local, epochs=epochs, shuffle=False, callbacks=[pruning],
              verbose=2 if index == 0 else 0)
    weights = model.get_weights()
    optimizer_state = [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
    sparsity = node_sparsity(model)
    keras.distribution.set_distribution(None)
    path = os.path.join(args.out, "model.keras")
    if index == 0:
        os.makedirs(args.out, exist_ok=True)
        twin = build()
        twin.set_weights(weights)
        twin.optimizer.build(twin.trainable_variables)
        for variable, value in zip(twin.optimizer.variables, optimizer_state):
            variable.assign(value)
        twin.save(path)
    multihost_utils.sync_global_devices("checkpoint written")
    restored = keras.saving.load_model(path)
    accuracy = restored.evaluate(xt, yt, batch_size=1000, verbose=0)[1]
    print(f"process {index} of {count}: node sparsity {sparsity}; checkpoint {path} test accuracy {accuracy:.4f}",
          flush=True)
    assert np.isfinite(accuracy)


def launch_local(args):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = [sys.executable, os.path.abspath(__file__), "--coordinator", f"127.0.0.1:{port}",
            "--num-processes", str(args.processes), "--out", args.out]
    base += ["--quick"] * args.quick + (["--data-dir", args.data_dir] if args.data_dir else [])
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    env.pop("XLA_FLAGS", None)
    workers = [subprocess.Popen(base + ["--process-id", str(i)], env=env) for i in range(args.processes)]
    codes = [w.wait() for w in workers]
    if any(codes):
        sys.exit(f"a worker failed: exit codes {codes}")


if __name__ == "__main__":
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=2, help="local worker processes to start")
    p.add_argument("--coordinator", help="HOST:PORT of process 0 (worker mode)")
    p.add_argument("--num-processes", type=int)
    p.add_argument("--process-id", type=int)
    p.add_argument("--out", default="distributed_example", help="where process 0 writes the checkpoint")
    args = p.parse_args()
    if os.environ["KERAS_BACKEND"] != "jax":
        sys.exit(f"This example runs on the JAX backend; KERAS_BACKEND is {os.environ['KERAS_BACKEND']!r}.")
    if args.coordinator is None:
        launch_local(args)
    elif args.num_processes is None or args.process_id is None:
        sys.exit("--coordinator needs --num-processes and --process-id.")
    else:
        worker(args)
