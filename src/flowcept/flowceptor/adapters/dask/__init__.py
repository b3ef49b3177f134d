"""Compatibility path of the reference's Dask adapter."""
