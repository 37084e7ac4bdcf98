"""Celery workers: the tasks and the engines they run (TensorFlow and OpenCV load lazily)."""
