"""LSNet operators: the SKA op and its backends."""
from lsnet.ops.ska import BACKENDS, available_backends, check_shapes, ska, ska_bn_add, ska_reference

__all__ = ["BACKENDS", "available_backends", "check_shapes", "ska", "ska_bn_add", "ska_reference"]
