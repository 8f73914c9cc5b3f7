"""Train with keras.distribution.DataParallel over two host devices, and on one device:
XLA_FLAGS=--xla_force_host_platform_device_count=2 KERAS_BACKEND=jax python jax_data_parallel.py OUT.json"""

import sys

import jax
import keras

import common

assert len(jax.devices()) == 2, jax.devices()
x, y = common.data()
results = {}
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
model = common.build_and_compile()
history = model.fit(x, y, batch_size=common.GLOBAL_BATCH, epochs=common.EPOCHS, shuffle=False,
                    callbacks=[common.pruning()], verbose=0)
results["data_parallel"] = common.summary(model, history)
keras.distribution.set_distribution(None)
model = common.build_and_compile()
history = model.fit(x, y, batch_size=common.GLOBAL_BATCH, epochs=common.EPOCHS, shuffle=False,
                    callbacks=[common.pruning()], verbose=0)
results["single"] = common.summary(model, history)
common.write(sys.argv[1], results)
