"""Energy prices per slot as providers: the time-of-use table, JEPX day-ahead spot files, the
imbalance price files, and a stated forecast for days not yet published.

One interface (:class:`~vpp.forecast.prices.provider.PriceProvider`), chosen in the config's
``prices`` section (:func:`~vpp.forecast.prices.provider.price_provider`); the optimiser,
the bids and the cost view all read prices through it.
"""
from vpp.forecast.prices.errors import PriceFileError
from vpp.forecast.prices.imbalance import ImbalancePrices, parse_imbalance_csv, read_imbalance_csv
from vpp.forecast.prices.jepx import AREAS, parse_jepx_spot, read_jepx_spot
from vpp.forecast.prices.provider import JepxProvider, PriceProvider, TouProvider, price_provider

__all__ = ["PriceFileError", "AREAS", "parse_jepx_spot", "read_jepx_spot", "ImbalancePrices",
           "parse_imbalance_csv", "read_imbalance_csv", "PriceProvider", "TouProvider", "JepxProvider",
           "price_provider"]
