"""The built-in spectrum readers, registered through the same ``register_readers`` hook a third party uses."""
from astrodash_core.hookspecs import hookimpl

from .fits import FitsReader
from .lnw import LnwReader
from .osc_json import OscJsonReader
from .text import AsciiReader, CsvReader

READERS = (FitsReader(), LnwReader(), OscJsonReader(), CsvReader(), AsciiReader())


@hookimpl
def register_readers(register):
    for reader in READERS:
        register(reader)
