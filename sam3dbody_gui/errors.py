"""Errors that reach the user as one clear line (CLI) or a message box (GUI).

Anything the user can fix (a bad file, a wrong folder, a missing GPU) is raised as a
`UserError` subclass with a message that says what is wrong and what to do. The CLI prints
`error: <message>` and exits non-zero; the GUI shows the message. Other exceptions are bugs.
"""

import errno


class UserError(Exception):
    """A problem the user can act on; `str(err)` is the whole message."""


class ImageError(UserError):
    """The image could not be read or is unusable."""


class BoxError(UserError):
    """The person box is empty or lies outside the image."""


class ModelFolderError(UserError):
    """The model folder is missing files, or they are corrupt or of the wrong architecture."""


class DeviceError(UserError):
    """The requested device (e.g. CUDA) or runtime (e.g. TensorRT) is not available."""


def first_line(exc: BaseException) -> str:
    """An exception's first line of text, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe_os_error(exc: OSError) -> str:
    """The cause in words a user can act on (not 'not a zip archive' for 'permission denied')."""
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.ELOOP:
        return "symlink loop (too many levels of symbolic links)"
    if code == errno.EISDIR:
        return "is a folder, not a file"
    if code == errno.ENOENT:
        return "not found"
    if code == errno.EIO:
        return "input/output error (a failing disk or an unreachable network drive?)"
    return exc.strerror or str(exc)
