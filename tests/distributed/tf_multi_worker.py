"""One worker of a MultiWorkerMirroredStrategy run (TF_CONFIG set by the caller), or the
single-process reference: python tf_multi_worker.py OUT.json [single]"""

import sys

import tensorflow as tf

import common

x, y = common.data()
if len(sys.argv) > 2 and sys.argv[2] == "single":
    model = common.build_and_compile()
else:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = common.build_and_compile()
# A tf.data pipeline, which Keras shards across the workers.
dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(common.GLOBAL_BATCH)
history = model.fit(dataset, epochs=common.EPOCHS, callbacks=[common.pruning()], verbose=0)
common.write(sys.argv[1], common.summary(model, history))
