"""Every Celery task Atelier runs. Importing this loads no TensorFlow and no OpenCV."""

from workers import shutdown
from workers.tasks import fast, nst, ping, video

__all__ = ["fast", "nst", "ping", "shutdown", "video"]
