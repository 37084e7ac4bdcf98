"""Every Celery task Atelier runs. Importing this loads no TensorFlow and no OpenCV."""

from workers.tasks import ping

__all__ = ["ping"]
