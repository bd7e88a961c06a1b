"""Forecasts for the planner: PV (pvlib), weather providers, site load, tariff expansion.

Every forecast is indexed by slot start in UTC; powers in W (>= 0), prices per kWh.
"""
