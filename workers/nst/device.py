"""Which device TensorFlow computes on, and how it is set up for a long-lived worker.

GPU memory growth is switched on before the first tensor is placed: TensorFlow otherwise grabs
nearly all GPU memory at start-up, which starves any other process sharing the card (a second
worker, the video pipeline's encoder).
"""

from __future__ import annotations

import logging

import tensorflow as tf

log = logging.getLogger(__name__)


def configure_tensorflow() -> None:
    """Turn on memory growth for every GPU (a no-op once TensorFlow has initialised them)."""
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # devices already initialised: the setting is fixed by now
            log.debug("memory growth for %s left as it is", gpu.name)


def describe_device() -> str:
    """`CPU`, or `GPU:0 <name>` for the device the engine's tensors land on."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"GPU:0 {details.get('device_name', 'unknown GPU')}"
