"""Train with tf.distribute.MirroredStrategy over two logical CPU devices, and on one
device, and write both summaries: python tf_mirrored.py OUT.json"""

import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import common  # noqa: E402

x, y = common.data()
results = {}
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
with strategy.scope():
    model = common.build_and_compile()
history = model.fit(x, y, batch_size=common.GLOBAL_BATCH, epochs=common.EPOCHS, shuffle=False,
                    callbacks=[common.pruning()], verbose=0)
results["mirrored"] = common.summary(model, history)
model = common.build_and_compile()
history = model.fit(x, y, batch_size=common.GLOBAL_BATCH, epochs=common.EPOCHS, shuffle=False,
                    callbacks=[common.pruning()], verbose=0)
results["single"] = common.summary(model, history)
common.write(sys.argv[1], results)
