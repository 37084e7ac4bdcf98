"""Producers: the HTTP API and the `atelier` CLI. They never import TensorFlow or OpenCV."""
