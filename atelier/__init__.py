"""Atelier's shared core: settings, database, storage, the Celery app and job schemas.

Everything here is light on purpose: producers (the CLI, the HTTP API, the scheduler) import it,
and they must start fast on machines without TensorFlow or OpenCV.
"""

__version__ = "0.1.0"
