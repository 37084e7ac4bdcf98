"""The fast style-transfer engine: Magenta's arbitrary-style network run with onnxruntime."""
