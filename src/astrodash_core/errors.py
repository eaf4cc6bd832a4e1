"""The exceptions astrodash raises on bad input; all are ValueErrors so callers can catch them broadly."""


class AstrodashError(ValueError):
    """Base class of astrodash's input errors."""


class SpectrumReadError(AstrodashError):
    """A spectrum could not be read: the message names the file and the problem."""

    def __init__(self, message: str, filename: str | None = None):
        self.filename = filename
        self.problem = message
        super().__init__(f"{filename}: {message}" if filename else message)


class CoverageError(AstrodashError):
    """A spectrum's rest-frame wavelength coverage overlaps the model grid too little to classify."""


class ModelFileError(AstrodashError):
    """A model file is malformed, unsafe, or does not match the preprocessing it is used with."""
