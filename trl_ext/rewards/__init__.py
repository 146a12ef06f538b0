from .code import *  # noqa: F403
from .code import __all__  # noqa: F401
