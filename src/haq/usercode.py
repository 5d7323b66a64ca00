"""Load a function from the user's own file, given as ``path/to/file.py:name``.

Every failure (no file, the file does not import, no such name, not callable) is a
``ConfigError`` naming the file and the fix, so the CLI prints one line instead of a traceback
from inside haq.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any


def is_target(text: str) -> bool:
    """Whether ``text`` looks like ``file.py:name``."""
    path, sep, name = text.rpartition(":")
    return bool(sep and name and path.endswith(".py"))


def one_line(err: BaseException) -> str:
    """``SyntaxError: invalid syntax (net.py, line 3)``: the error's type and first line."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def load_callable(target: str, what: str) -> Callable[..., Any]:
    """The callable ``name`` of ``path/to/file.py:name``; ``what`` names it in errors
    (``"metric"``, ``"data factory"``).

    Raises:
        ConfigError: the target is malformed, the file is missing or fails to import, or it
            has no callable of that name.
    """
    from haq.errors import ConfigError

    if not is_target(target):
        raise ConfigError(f"{what} {target!r} must be path/to/file.py:function")
    path_text, _, attr = target.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        raise ConfigError(f"{what} file {path} does not exist; give path/to/file.py:function")
    spec = importlib.util.spec_from_file_location(f"haq_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's file: say what broke, not where inside haq
        raise ConfigError(f"cannot import {path}: {one_line(err)}; fix the file") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise ConfigError(f"{path} has no function {attr!r}; the {what} must be "
                          "path/to/file.py:function")
    return function


def call_factory(target: str, what: str) -> Any:
    """What ``path/to/file.py:name()`` returns, called with no arguments; ``what`` names the
    factory in errors (``"model factory"``, ``"data factory"``).

    Raises:
        ConfigError: the factory cannot be loaded (``load_callable``) or its call raises.
    """
    from haq.errors import ConfigError

    factory = load_callable(target, what)
    try:
        return factory()
    except Exception as err:  # the user's code: say what broke, not where inside haq
        raise ConfigError(f"{target}() raised {one_line(err)}; fix the factory (it is called "
                          "with no arguments)") from None
