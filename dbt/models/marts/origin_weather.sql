{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key=['origin', 'feature_timestamp']) }}
-- Hourly weather at the departure airport; joined to a flight as the latest
-- observation at or before its scheduled departure.
select
    origin,
    observed_at as feature_timestamp,
    observation_date,
    temperature_f,
    dewpoint_f,
    humidity_pct,
    wind_speed_mph,
    wind_gust_mph,
    precipitation_in,
    pressure_mb,
    visibility_mi
from {{ ref('stg_nycflights13__weather') }}
