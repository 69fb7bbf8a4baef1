"""Graph rewrites that sira's range analysis enables, in the qonnx
``Transformation`` idiom (``model = model.transform(Pass())``).

Each pass is small, verifiable alone, and leaves the model computing the
same function (checked with :func:`sira.verify_equivalent`).
"""
