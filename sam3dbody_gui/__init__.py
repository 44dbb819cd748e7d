"""sam3dbody-gui: point-and-click 3D human mesh recovery with SAM 3D Body."""

__version__ = "0.1.0"
