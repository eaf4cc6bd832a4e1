"""Type stub for the one-pass column checks (``_columns.pyx``)."""
import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

def column_checks(wave: F64, flux: F64, error: F64 | None) -> tuple[bool, int, bool, float, float]: ...
