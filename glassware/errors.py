"""Exception types a caller can catch by meaning. All derive from GlasswareError."""


class GlasswareError(Exception):
    """Base class for every error this project raises on purpose."""


class DatasetError(GlasswareError):
    """A dataset folder is missing, empty, or has a class that cannot be trained on."""


class ImageDecodeError(GlasswareError):
    """Bytes or a file that are not a decodable image (empty, truncated, corrupt, unknown format)."""


class FrameFormatError(GlasswareError):
    """A raw frame whose encoding is unknown or whose shape/size does not match its encoding."""


class BundleError(GlasswareError):
    """A model bundle that is missing files, has a bad manifest, or fails its sha256 check."""


class RunError(GlasswareError):
    """A training run directory that is missing or incomplete."""


class ExportError(GlasswareError):
    """An export or calibration step that cannot give a trustworthy model (bad representative data, failed conversion)."""


class SynthesisError(GlasswareError, ValueError):
    """Synthetic data that cannot be made as asked (unknown class or domain, bad size, count < 1)."""
