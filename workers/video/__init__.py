"""Offline video face filters: probe, detect, track, filter, tile and encode, one frame at a time.

Importing this package loads nothing heavy; the modules below import OpenCV themselves, so a
Celery task imports them inside its body and the worker parent stays free of cv2.
"""
