"""Type stub for the Cython text-table parser (``_parse.pyx``)."""
import numpy as np
import numpy.typing as npt

def parse_table(
    data: npt.NDArray[np.uint8], max_cols: int = 3
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int32], int]: ...
def sniff_lines(data: npt.NDArray[np.uint8], max_lines: int) -> tuple[int, int]: ...
