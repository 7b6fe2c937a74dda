"""Model families, one file each; importing this package registers every model and suite."""

from architectures import mobilenet_v2  # noqa: F401
from architectures import resnet  # noqa: F401
from architectures import tiny_hand  # noqa: F401
from architectures import tinyml  # noqa: F401
from architectures import suites  # noqa: F401,E402  (last: suites name the models above)
