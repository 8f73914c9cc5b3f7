"""MirroredStrategy training (two logical CPUs) with BackupAndRestore and eigenvalue
pruning, whose process can be made to die: python tf_resume.py OUT.json BACKUP_DIR [DIE_AFTER_EPOCH]"""

import os
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

import common  # noqa: E402


class Die(keras.callbacks.Callback):
    """Kill the process (no clean-up, like a lost worker) after an epoch's backup."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            os._exit(3)


out, backup = sys.argv[1], sys.argv[2]
callbacks = [keras.callbacks.BackupAndRestore(backup), common.pruning()]
if len(sys.argv) > 3:
    callbacks.append(Die(int(sys.argv[3])))
x, y = common.data()
with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
    model = common.build_and_compile()
history = model.fit(x, y, batch_size=common.GLOBAL_BATCH, epochs=common.EPOCHS, shuffle=False,
                    callbacks=callbacks, verbose=0)
result = common.summary(model, history)
result["eigenvalues"] = [keras.ops.convert_to_numpy(l.eigenvalues_out).tolist() for l in model.layers]
common.write(out, result)
