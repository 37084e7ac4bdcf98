"""Neural style transfer (Gatys et al.) on TensorFlow: the engine a worker task drives."""
