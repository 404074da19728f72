"""Errors raised by the consent package.

One base class, ``ConsentError``; each leaf names the condition. ``user_message()`` is the
sentence a consent officer or operator sees; it never contains key material or file paths.
"""


class ConsentError(Exception):
    """Base class: the consent could not be established."""

    def user_message(self) -> str:
        return str(self) or self.__class__.__name__
