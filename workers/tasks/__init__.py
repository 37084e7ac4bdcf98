"""Every Celery task Atelier runs. Importing this loads no TensorFlow and no OpenCV."""

from workers.tasks import nst, ping, video

__all__ = ["nst", "ping", "video"]
