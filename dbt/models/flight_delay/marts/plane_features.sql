{{ config(materialized='table') }}
-- Plane attributes from the registry snapshot (2013), keyed by the hashed tail number.
select
    tailnum_hash,
    cast('2013-01-01' as timestamp) at time zone 'UTC' as feature_timestamp,
    year_built,
    2013 - year_built as plane_age_years,
    seats as plane_seats,
    engines as plane_engines
from {{ ref('stg_nycflights13__planes') }}
