"""One process of a multi-process data-parallel training on Keras' JAX engine (CPU, gloo):

    KERAS_BACKEND=jax python jax_multi_process.py OUT_DIR COORDINATOR_ADDRESS NUM_PROCESSES PROCESS_ID
    KERAS_BACKEND=jax python jax_multi_process.py OUT_DIR single

Every process calls `keras.distribution.initialize(...)` and trains with
`keras.distribution.DataParallel` over all processes' devices, feeding its own share of
each global batch (JAX assembles the global batch from the processes' local rows), with
the pruning callback. Process 0 alone writes the `.keras` checkpoint (of an undistributed
copy: saving the distributed model is a collective step); after a barrier every process
loads it and evaluates it. `single` trains the same model in one process
on the whole batches, for comparison. Each writes OUT_DIR/<process id or single>.json.
"""

import os
import sys

import jax

out_dir, mode = sys.argv[1], sys.argv[2]
if mode != "single":
    jax.config.update("jax_cpu_collectives_implementation", "gloo")

import keras  # noqa: E402

import common  # noqa: E402

x, y = common.data()
if mode == "single":
    model = common.build_and_compile()
    history = model.fit(x, y, batch_size=common.GLOBAL_BATCH, epochs=common.EPOCHS, shuffle=False,
                        callbacks=[common.pruning()], verbose=0)
    common.write(os.path.join(out_dir, "single.json"), common.summary(model, history))
    sys.exit(0)

address, count, index = mode, int(sys.argv[3]), int(sys.argv[4])
keras.distribution.initialize(job_addresses=address, num_processes=count, process_id=index)
devices = keras.distribution.list_devices()
assert jax.process_count() == count and len(devices) == count * jax.local_device_count(), devices
distribution = keras.distribution.DataParallel(devices=devices)
distribution.auto_shard_dataset = False  # each process feeds its own rows (below)
keras.distribution.set_distribution(distribution)


def local_rows(array):
    """This process's rows of every global batch: process i holds rows [i*b, (i+1)*b) of
    each batch of `count * b`, so the global batches are those of one-process training."""
    local = common.GLOBAL_BATCH // count
    return array.reshape(-1, count, local, *array.shape[1:])[:, index].reshape(-1, *array.shape[1:])


xl, yl = local_rows(x), local_rows(y)
model = common.build_and_compile()
history = model.fit(xl, yl, batch_size=common.GLOBAL_BATCH // count, epochs=common.EPOCHS, shuffle=False,
                    callbacks=[common.pruning()], verbose=0)
loss, accuracy = model.evaluate(xl, yl, batch_size=common.GLOBAL_BATCH // count, verbose=0)
result = {
    "loss": float(loss),
    "accuracy": float(accuracy),
    "train_loss": [float(v) for v in history.history["loss"]],
    "node_sparsity": list(common.node_sparsity(model).values()),
    "masks": [keras.ops.convert_to_numpy(l.eigenvalues_out_mask).tolist() for l in model.layers],
    "process_count": jax.process_count(),
    "devices": len(devices),
}
# Saving a distributed model is itself collective (every process would have to call
# `save`), so the one writer saves a local copy: weights to NumPy on every process (the
# variables are replicated), then an undistributed twin of the model on process 0.
checkpoint = os.path.join(out_dir, "model.keras")
weights = model.get_weights()
optimizer_state = [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
keras.distribution.set_distribution(None)
if index == 0:
    twin = common.build_and_compile()
    twin.set_weights(weights)
    twin.optimizer.build(twin.trainable_variables)
    for variable, value in zip(twin.optimizer.variables, optimizer_state):
        variable.assign(value)
    twin.save(checkpoint)
from jax.experimental import multihost_utils  # noqa: E402

multihost_utils.sync_global_devices("checkpoint written")
restored = keras.saving.load_model(checkpoint)
result["restored_masks"] = [keras.ops.convert_to_numpy(l.eigenvalues_out_mask).tolist() for l in restored.layers]
result["restored_loss"] = float(restored.evaluate(x, y, batch_size=common.GLOBAL_BATCH, verbose=0)[0])
result["restored_step"] = int(keras.ops.convert_to_numpy(restored.optimizer.iterations))
common.write(os.path.join(out_dir, f"{index}.json"), result)
multihost_utils.sync_global_devices("done")
