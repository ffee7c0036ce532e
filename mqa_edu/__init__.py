"""mqa_edu: the helper package behind the course "Multi-Query Attention from NumPy to GPU".

One module per idea, in course order (see README). Importing the package is instant and does not import torch:
import the module you need, e.g. ``from mqa_edu.attention import GroupedQueryAttention``.
"""
__version__ = "0.1.0"
