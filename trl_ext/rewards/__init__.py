from .code import *  # noqa: F403
from .code import __all__ as _code_all
from .image import *  # noqa: F403
from .image import __all__ as _image_all
from .naming import AsyncNamedReward, NamedReward, named_reward

__all__ = [*_code_all, *_image_all, "AsyncNamedReward", "NamedReward", "named_reward"]
