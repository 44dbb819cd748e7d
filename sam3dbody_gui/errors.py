"""Errors that reach the user as one clear line (CLI) or a message box (GUI).

Anything the user can fix (a bad file, a wrong folder, a missing GPU) is raised as a
`UserError` subclass with a message that says what is wrong and what to do. The CLI prints
`error: <message>` and exits non-zero; the GUI shows the message. Other exceptions are bugs.
"""


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
