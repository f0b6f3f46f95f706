"""Segment assignment (DESIGN.md "Segments"): customer value (buy-till-you-die features, RFM, CLV,
size tier), service tier and value profile, each from the dbt marts and rules in seeds/config."""
